"""The ``audio`` task: WAV files -> log-mel spectrograms -> a registry CNN -> a label.

A spectrogram is a grid like an image (mel bands x time frames), so the task turns each clip
into one: log-mel power in dB, the top 80 dB mapped to 0..255, low frequencies at the bottom,
resized to ``image_size`` and repeated over three channels (registry backbones take RGB). The
rest -- backbones, training, export, parity, runtimes -- is visionsuite's, reached through
the public task contract only (``visionsuite.task``, ``visionsuite.specs``,
``visionsuite.data.pipeline``, ``visionsuite.errors``).

Data layout: ``DATA/<class>/<clip>.wav`` (mono or stereo PCM / float WAV, any rate: resampled
to ``sample_rate``). ``visionsuite predict audio --model m.keras spectrogram.png`` takes
spectrogram images as written by :func:`save_spectrogram`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite.specs import InputSpec
from visionsuite.task import Dataset, Prediction, Sample, Task, TaskConfig

DB_RANGE = 80.0


@dataclasses.dataclass(frozen=True)
class AudioConfig(TaskConfig):
    """Options of the audio task."""

    # (int) side of the square spectrogram image the model takes
    image_size: int = 64
    # (int) clips are resampled to this rate (Hz)
    sample_rate: int = 8000
    # (float) clips are cut or zero-padded to this length (s)
    duration: float = 1.0
    # (int) mel bands
    n_mels: int = 40
    # (int) FFT window (samples); the hop is a quarter of it
    n_fft: int = 256

    def __post_init__(self):
        for ok, message, key in (
                (self.image_size >= 8, "image_size must be >= 8", "image_size"),
                (self.sample_rate >= 1000, "sample_rate must be >= 1000", "sample_rate"),
                (self.duration > 0, "duration must be > 0", "duration"),
                (8 <= self.n_mels <= self.n_fft // 2, "n_mels must be in [8, n_fft/2]", "n_mels")):
            if not ok:
                raise UsageError(f"{message}. Received: {key}={getattr(self, key)!r}")


@dataclasses.dataclass
class AudioPrediction(Prediction):
    label: str = ""
    score: float = 0.0


def read_wav(path: str | Path, sample_rate: int, duration: float) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate``, cut / padded to ``duration``."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    try:
        rate, data = wavfile.read(str(path))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read WAV file {path} ({exc}). Received: {path}") from exc
    data = np.asarray(data)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max)
    data = data.astype(np.float32)
    if rate != sample_rate:
        from math import gcd

        g = gcd(int(rate), int(sample_rate))
        data = resample_poly(data, sample_rate // g, rate // g).astype(np.float32)
    n = int(round(sample_rate * duration))
    return np.pad(data[:n], (0, max(0, n - len(data))))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters on the HTK mel scale."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bank = np.zeros((n_mels, len(freqs)), np.float32)
    for m in range(n_mels):
        lo, mid, hi = points[m:m + 3]
        bank[m] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


def log_mel_image(signal: np.ndarray, config: AudioConfig) -> np.ndarray:
    """The clip's log-mel spectrogram as an RGB uint8 image ``(size, size, 3)``."""
    import cv2
    from scipy.signal import stft

    _, _, spec = stft(signal, fs=config.sample_rate, nperseg=config.n_fft,
                      noverlap=config.n_fft - config.n_fft // 4, window="hann")
    power = np.abs(spec) ** 2
    mel = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels) @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    top = db.max()
    grey = np.clip((db - (top - DB_RANGE)) / DB_RANGE, 0, 1)[::-1]  # low bands at the bottom
    grey = cv2.resize((grey * 255).astype(np.uint8), (config.image_size, config.image_size),
                      interpolation=cv2.INTER_AREA)
    return np.repeat(grey[..., None], 3, axis=-1)


def save_spectrogram(path: str | Path, image: np.ndarray) -> Path:
    import cv2

    cv2.imwrite(str(path), image[..., ::-1])
    return Path(path)


def synthetic_clip(kind: str, rng: np.random.Generator, sample_rate: int,
                   duration: float) -> np.ndarray:
    """A synthetic sound: ``up`` / ``down`` frequency sweeps or a steady ``tone``, random
    pitch and loudness, with white noise."""
    t = np.arange(int(sample_rate * duration)) / sample_rate
    f0 = rng.uniform(300, 800)
    f1 = rng.uniform(1800, 3000)
    if kind == "up":
        freq = f0 + (f1 - f0) * t / duration
    elif kind == "down":
        freq = f1 - (f1 - f0) * t / duration
    else:
        freq = np.full_like(t, rng.uniform(f0, f1))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    clip = rng.uniform(0.3, 0.8) * np.sin(phase) + rng.normal(0, 0.05, len(t))
    return np.clip(clip, -1, 1).astype(np.float32)


def write_synthetic_dataset(folder: str | Path, classes=("down", "tone", "up"), per_class=4,
                            sample_rate=8000, duration=1.0, seed=0) -> Path:
    """``folder/<class>/<i>.wav`` 16-bit PCM clips of :func:`synthetic_clip`; other class
    names reuse the three kinds in turn."""
    from scipy.io import wavfile

    rng = np.random.default_rng(seed)
    kinds = ("down", "tone", "up")
    folder = Path(folder)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        kind = name if name in kinds else kinds[c % len(kinds)]
        for i in range(per_class):
            clip = synthetic_clip(kind, rng, sample_rate, duration)
            wavfile.write(folder / name / f"{i}.wav", sample_rate, (clip * 32767).astype(np.int16))
    return folder


class AudioTask(Task):
    """Sound classification on log-mel spectrograms.

    Example:
        >>> task = AudioTask(AudioConfig(image_size=64))
        >>> data = task.load_dataset("sounds/")            # sounds/<class>/<clip>.wav
    """

    name = "audio"
    Config = AudioConfig
    dataset_formats = {"wav-folders": "DATA/<class>/<clip>.wav"}

    def input_spec(self) -> InputSpec:
        return InputSpec.image(int(self.config.image_size))

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        root = Path(path)
        if not root.is_dir():
            raise DataError(f"audio data must be a folder of <class>/<clip>.wav. "
                            f"Received: {path}")
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        names = list(classes) if classes else found
        if len(names) < 2:
            raise DataError(f"audio data needs at least 2 class folders. Received: {found}")
        samples, skipped = [], []
        for index, name in enumerate(names):
            for wav in sorted((root / name).glob("*.wav")):
                try:
                    signal = read_wav(wav, self.config.sample_rate, self.config.duration)
                except DataError as exc:
                    if strict:
                        raise
                    skipped.append((str(wav), str(exc)))
                    continue
                samples.append(Sample(log_mel_image(signal, self.config), index, str(wav)))
        if not samples:
            raise DataError(f"no readable .wav clips under {root}. Received: {path}")
        return Dataset(names, samples, skipped)

    def make_tiny_dataset(self, folder, classes):
        return write_synthetic_dataset(Path(folder), tuple(classes), per_class=4,
                                       sample_rate=self.config.sample_rate,
                                       duration=self.config.duration)

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        import tensorflow as tf

        from visionsuite.data.pipeline import make_tf_dataset

        size = int(self.config.image_size)
        return make_tf_dataset(
            dataset, output_signature=(tf.TensorSpec((size, size, 3), tf.float32),
                                       tf.TensorSpec((), tf.int32)),
            batch_size=batch_size, training=training, seed=seed)

    # === Model ===
    def build_model(self, backbone, classes):
        import keras

        inputs = keras.Input(backbone.spec.input_shape, name="spectrogram")
        deepest = max(backbone.spec.levels, key=lambda lv: lv.stride).name
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.model(inputs)[deepest])
        x = keras.layers.Dense(len(classes), name="logits")(x)
        out = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        return keras.Model(inputs, out, name=f"{backbone.spec.name}_audio")

    def loss(self, classes, dataset=None):
        return "sparse_categorical_crossentropy"

    def metrics(self, classes):
        return ["accuracy"]

    # === Inference ===
    def postprocess(self, outputs, meta, classes):
        p = np.asarray(outputs["probabilities"]).reshape(-1)
        i = int(p.argmax())
        return AudioPrediction(classes, label=classes[i], score=float(p[i]))

    def to_record(self, prediction):
        return {"label": prediction.label, "score": round(prediction.score, 6)}
