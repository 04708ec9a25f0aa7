"""The three inference backends behind :func:`visionsuite.runtime.load_runtime`.

Each takes a float32 NHWC batch of RGB pixels in [0, 255] and returns numpy outputs. The batch
size is fixed when the backend is made (one compiled shape, no retracing or reallocation):
smaller batches are zero-padded, larger ones run in chunks.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

import numpy as np

from visionsuite.errors import ModelError, UsageError
from visionsuite.models import ModelMetadata


class InferenceModel(abc.ABC):
    """A model ready to run on batches of frames, with its metadata.

    Args:
        metadata: what the model is (task, classes, input size).
        source: the file the model was loaded from (for messages).
        batch_size: the batch size it runs at.

    Example:
        >>> model = load_runtime("best.keras")             # fp32 TFLite on CPU
        >>> probs = model(np.zeros((1, 224, 224, 3), np.float32))
    """

    # (str) backend name: "keras", "savedmodel" or "tflite"
    runtime: ClassVar[str]

    def __init__(self, metadata: ModelMetadata, source: str | Path, batch_size: int = 1):
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.metadata = metadata
        self.source = str(source)
        self.batch_size = int(batch_size)

    @property
    def input_size(self) -> int:
        return int(self.metadata.input_size)

    @abc.abstractmethod
    def _run(self, batch: np.ndarray):
        """Run exactly ``batch_size`` inputs; return an array or a list of arrays."""

    def __call__(self, batch: np.ndarray):
        batch = np.asarray(batch, dtype=np.float32)
        s = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (s, s, 3):
            raise ModelError(f"{self.source}: expected a batch of shape (N, {s}, {s}, 3). "
                             f"Received: shape={batch.shape}")
        n, bs = len(batch), self.batch_size
        if n == bs:
            return self._run(batch)
        outs = []
        for start in range(0, n, bs):
            chunk = batch[start:start + bs]
            if len(chunk) < bs:
                pad = np.zeros((bs - len(chunk),) + chunk.shape[1:], np.float32)
                chunk = np.concatenate([chunk, pad])
            outs.append((self._run(chunk), min(bs, n - start)))
        if isinstance(outs[0][0], list):
            return [np.concatenate([o[k][:m] for o, m in outs]) for k in range(len(outs[0][0]))]
        return np.concatenate([o[:m] for o, m in outs])

    def describe(self) -> str:
        return f"{self.runtime} ({self.source}, batch {self.batch_size})"


def _numpy(out):
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        outs = [np.asarray(o) for o in out]
        return outs[0] if len(outs) == 1 else outs
    return np.asarray(out)


class KerasModel(InferenceModel):
    """A Keras model run through one ``tf.function`` traced for a fixed batch shape (never
    ``predict`` or eager calls per frame)."""

    runtime = "keras"

    def __init__(self, model, metadata, source, batch_size=1, jit_compile=False):
        super().__init__(metadata, source, batch_size)
        import tensorflow as tf

        s = self.input_size
        self.model = model
        spec = tf.TensorSpec((self.batch_size, s, s, 3), tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                               jit_compile=jit_compile)

    def _run(self, batch):
        return _numpy(self._fn(batch))


class SavedModelModel(InferenceModel):
    """A SavedModel folder (as written by ``visionsuite export``: endpoint ``serve``, or any
    ``serving_default`` signature)."""

    runtime = "savedmodel"

    def __init__(self, path, metadata, batch_size=1):
        super().__init__(metadata, path, batch_size)
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: cannot load SavedModel ({type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})"
                             ) from exc
        if hasattr(self._loaded, "serve"):
            fn = self._loaded.serve
            self._call = lambda x: fn(x)
        elif "serving_default" in self._loaded.signatures:
            sig = self._loaded.signatures["serving_default"]
            name = list(sig.structured_input_signature[1])[0]
            self._call = lambda x: sig(**{name: x})
        else:
            raise ModelError(f"{path}: SavedModel has no `serve` endpoint or "
                             f"`serving_default` signature")
        self._tf = tf

    def _run(self, batch):
        return _numpy(self._call(self._tf.constant(batch)))


class TFLiteModel(InferenceModel):
    """A ``.tflite`` model run by ``ai-edge-litert`` (XNNPACK delegate on CPU).

    Args:
        threads: interpreter threads (default 1: as fast as 2 for one frame on a small
            CPU, and it leaves a core for the other pipeline stages).
    """

    runtime = "tflite"

    def __init__(self, path, metadata, batch_size=1, threads=None):
        super().__init__(metadata, path, batch_size)
        from ai_edge_litert.interpreter import Interpreter

        self.threads = int(threads or 1)
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1. Received: threads={threads}")
        try:
            self._interp = Interpreter(model_path=str(path), num_threads=self.threads)
            inp = self._interp.get_input_details()
            if len(inp) != 1:
                raise ModelError(f"{path}: expected one input tensor. Received: {len(inp)}")
            self._in = inp[0]
            s = self.input_size
            shape = [self.batch_size, s, s, 3]
            if list(self._in["shape"]) != shape:
                self._interp.resize_tensor_input(self._in["index"], shape, strict=False)
            from visionsuite.tflog import LITERT_NOISE, filtered_stderr

            with filtered_stderr(LITERT_NOISE):  # "INFO: Created ... XNNPACK delegate"
                self._interp.allocate_tensors()
        except ModelError:
            raise
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: cannot load TFLite model ({str(exc).strip()[:200]})") from exc
        self._in = self._interp.get_input_details()[0]
        self._outs = sorted(self._interp.get_output_details(), key=lambda d: d["index"])

    def _run(self, batch):
        d = self._in
        if d["dtype"] != np.float32:  # integer-only model: quantise the input
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(d["dtype"])
        self._interp.set_tensor(d["index"], batch)
        self._interp.invoke()
        outs = []
        for o in self._outs:
            y = self._interp.get_tensor(o["index"])
            if o["dtype"] != np.float32:
                scale, zero = o["quantization"]
                y = (y.astype(np.float32) - zero) * (scale or 1.0)
            outs.append(np.array(y))  # copy: the interpreter reuses its buffers
        return outs[0] if len(outs) == 1 else outs

    def describe(self) -> str:
        return f"tflite ({self.source}, batch {self.batch_size}, {self.threads} thread(s))"
