"""The default segmentation model: MediaPipe's selfie (person) segmentation, run by LiteRT.

The TFLite file comes from the ``mediapipe==0.10.21`` wheel on PyPI (Apache-2.0; fetched
once into the visionsuite cache by :func:`visionsuite.samples.selfie_segmentation_tflite`,
offline afterwards). The network takes 256x256 RGB in ``[0, 1]`` and returns one sigmoid
channel (person probability). :class:`SelfieSegmenter` adapts it to the visionsuite model
convention -- float32 RGB pixels in ``[0, 255]`` in, per-pixel class probabilities
``(background, person)`` out -- and carries its :class:`~visionsuite.models.ModelMetadata`,
so the stream engine runs it like any trained segmentation model.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError
from visionsuite.models import ModelMetadata

SELFIE_CLASSES = ("background", "person")
SELFIE_INPUT_SIZE = 256
SELFIE_SOURCE = ("mediapipe==0.10.21 (PyPI, Apache-2.0): "
                 "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite")


class SelfieSegmenter:
    """MediaPipe selfie segmentation as a visionsuite ``segmentation`` model.

    ``predict`` takes float32 RGB pixels in ``[0, 255]`` of shape ``(B, 256, 256, 3)``
    (the visionsuite convention; the ``1/255`` scaling the network expects happens here) and
    returns ``(B, 256, 256, 2)`` float32 probabilities of background and person.

    Args:
        path: the ``.tflite`` file; default: fetched from the mediapipe wheel (cached).
        threads: LiteRT (XNNPACK) threads; one is as fast as two for single frames.

    Example:
        >>> model = SelfieSegmenter()
        >>> probs = model.predict(frames_rgb.astype("float32"))   # (B, 256, 256, 2)
        >>> model.metadata.classes
        ('background', 'person')
    """

    input_size = SELFIE_INPUT_SIZE
    # (float) factor the wrapped network applies to [0, 255] pixels before inference
    input_scale = 1.0 / 255.0

    def __init__(self, path: str | Path | None = None, *, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        if path is None:
            from visionsuite import samples

            path = samples.selfie_segmentation_tflite()
        self.path = Path(path)
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=int(threads))
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: cannot load the TFLite model ({exc})") from exc
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        expected = [1, SELFIE_INPUT_SIZE, SELFIE_INPUT_SIZE, 3]
        if list(inp["shape"]) != expected or int(out["shape"][-1]) != 1:
            raise ModelError(f"{self.path}: not the selfie segmentation model (input "
                             f"{list(inp['shape'])}, output {list(out['shape'])}). "
                             f"Received: expected input {expected} and one output channel")
        self._input = inp["index"]
        self._output = out["index"]
        self._lock = threading.Lock()  # an interpreter is not safe across threads
        self.metadata = ModelMetadata(
            task="segmentation", classes=SELFIE_CLASSES, input_size=SELFIE_INPUT_SIZE,
            backbone=None,
            extra={"source": SELFIE_SOURCE, "licence": "Apache-2.0", "runtime": "tflite",
                   "model_file": str(self.path),
                   "preprocessing": {"scale": self.input_scale, "mean": [0.0, 0.0, 0.0],
                                     "std": [1.0, 1.0, 1.0], "channel_order": "RGB"}})

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 256, 256, 3)`` RGB in ``[0, 255]`` -> ``(B, 256, 256, 2)`` probabilities."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.shape[1:] != (SELFIE_INPUT_SIZE, SELFIE_INPUT_SIZE, 3):
            raise ModelError(f"the selfie segmentation model takes (B, 256, 256, 3) RGB "
                             f"inputs. Received: shape={tuple(x.shape)}")
        out = np.empty((len(x), SELFIE_INPUT_SIZE, SELFIE_INPUT_SIZE, 2), np.float32)
        with self._lock:
            for i in range(len(x)):
                self._interpreter.set_tensor(self._input, x[i : i + 1] * self.input_scale)
                self._interpreter.invoke()
                person = self._interpreter.get_tensor(self._output)[0, ..., 0]
                out[i, ..., 1] = person
                out[i, ..., 0] = 1.0 - person
        return out

    __call__ = predict
