"""visionsuite-audio: the ``audio`` task (sound classification on log-mel spectrograms)."""

from visionsuite_audio.task import AudioConfig, AudioPrediction, AudioTask, log_mel_image, read_wav

__all__ = ["AudioConfig", "AudioPrediction", "AudioTask", "log_mel_image", "read_wav"]
