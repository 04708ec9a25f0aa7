"""The three inference backends behind :func:`visionsuite.runtime.load_runtime`.

Each takes a batch shaped ``(N, *metadata.input_spec.shape)`` (float32 RGB pixels in [0, 255]
for images; clips and volumes likewise) and returns ``{output name: numpy array}`` with the
names of ``metadata.outputs`` -- the same names on every backend, whatever order Keras,
SavedModel or TFLite keep their output tensors in. The batch size is fixed when the backend is
made (one compiled shape, no retracing or reallocation): smaller batches are zero-padded,
larger ones run in chunks.
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
    def input_spec(self):
        return self.metadata.input_spec

    @property
    def input_size(self) -> int | None:
        """The side of a square image input (``None`` for other inputs)."""
        return self.metadata.input_size

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.metadata.output_names

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run exactly ``batch_size`` inputs; return ``{output name: array}``."""

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        spec = self.input_spec
        batch = np.asarray(batch, dtype=np.dtype(spec.dtype))
        if batch.ndim != len(spec.shape) + 1 or batch.shape[1:] != spec.shape:
            raise ModelError(f"{self.source}: expected a batch of shape (N, "
                             f"{', '.join(map(str, spec.shape))}) ({spec.layout}). "
                             f"Received: shape={batch.shape}")
        n, bs = len(batch), self.batch_size
        if n == bs:
            return self._run(batch)
        outs = []
        for start in range(0, n, bs):
            chunk = batch[start:start + bs]
            if len(chunk) < bs:
                pad = np.zeros((bs - len(chunk),) + chunk.shape[1:], chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outs.append((self._run(chunk), min(bs, n - start)))
        return {k: np.concatenate([o[k][:m] for o, m in outs]) for k in outs[0][0]}

    def describe(self) -> str:
        return f"{self.runtime} ({self.source}, batch {self.batch_size})"


def named_outputs(out, names: tuple[str, ...], source: str = "model") -> dict[str, np.ndarray]:
    """A Keras / SavedModel result (a tensor, a list in output order, or a dict by name) as
    ``{name: numpy array}`` with the metadata's output ``names``."""
    if isinstance(out, dict):
        missing = [n for n in names if n not in out]
        if missing and len(out) == len(names) == 1:
            return {names[0]: np.asarray(next(iter(out.values())))}
        if missing:
            raise ModelError(f"{source}: the model has no output {missing[0]!r}. "
                             f"Received: outputs={sorted(out)}")
        return {n: np.asarray(out[n]) for n in names}
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if len(outs) != len(names):
        raise ModelError(f"{source}: the metadata names {len(names)} outputs {list(names)} but "
                         f"the model returns {len(outs)}. Received: {len(outs)} outputs")
    return {n: np.asarray(o) for n, o in zip(names, outs)}


class KerasModel(InferenceModel):
    """A Keras model run through one ``tf.function`` traced for a fixed batch shape (never
    ``predict`` or eager calls per frame)."""

    runtime = "keras"

    def __init__(self, model, metadata, source, batch_size=1, jit_compile=False):
        super().__init__(metadata, source, batch_size)
        import tensorflow as tf

        self.model = model
        spec = tf.TensorSpec((self.batch_size, *self.input_spec.shape), self.input_spec.dtype)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                               jit_compile=jit_compile)

    def _run(self, batch):
        return named_outputs(self._fn(batch), self.output_names, self.source)


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
        return named_outputs(self._call(self._tf.constant(batch)), self.output_names,
                             self.source)


class TFLiteModel(InferenceModel):
    """A ``.tflite`` model run by ``ai-edge-litert`` (XNNPACK delegate on CPU).

    Args:
        threads: interpreter threads (default 1; the stream engine picks a number from its
            measured stage costs and the core count when none is given, see
            :attr:`threads_given` and :meth:`set_threads`).
    """

    runtime = "tflite"

    def __init__(self, path, metadata, batch_size=1, threads=None):
        super().__init__(metadata, path, batch_size)
        # (bool) whether the caller chose the thread count (the engine then keeps it)
        self.threads_given = threads is not None
        self.threads = int(threads or 1)
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1. Received: threads={threads}")
        self._load(path, self.threads)

    def set_threads(self, threads: int) -> None:
        """Rebuild the interpreter with ``threads`` threads (same model and batch size). Call
        it from the thread that runs the model, between calls."""
        threads = int(threads)
        if threads < 1:
            raise UsageError(f"threads must be >= 1. Received: threads={threads}")
        if threads != self.threads:
            self._load(self.source, threads)
            self.threads = threads

    def _load(self, path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=str(path), num_threads=threads)
            inp = self._interp.get_input_details()
            if len(inp) != 1:
                raise ModelError(f"{path}: expected one input tensor. Received: {len(inp)}")
            self._in = inp[0]
            shape = [self.batch_size, *self.input_spec.shape]
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
        self._outs = self._output_details(path)

    def _output_details(self, path) -> list[tuple[str, dict]]:
        """``(name, tensor details)`` per metadata output. The serving signature names the
        outputs (a dict-output Keras model keeps its keys; a list-output one has
        ``output_0``, ``output_1``... in list order); tensor indices follow neither. Files
        without a signature (made by other tools) have one output, or keep tensor order."""
        names = self.output_names
        by_index = {d["index"]: d for d in self._interp.get_output_details()}
        sigs = self._interp._get_full_signature_list() or {}
        sig = sigs.get("serving_default") or (next(iter(sigs.values())) if sigs else None)
        outputs = dict(sig["outputs"]) if sig else {}
        if outputs and set(names) <= set(outputs):
            return [(n, by_index[outputs[n]]) for n in names]
        ordered = sorted((k for k in outputs if k.startswith("output_")),
                         key=lambda k: int(k.rsplit("_", 1)[1]) if k.rsplit("_", 1)[1].isdigit() else -1)
        if len(ordered) == len(outputs) == len(names):
            return [(n, by_index[outputs[k]]) for n, k in zip(names, ordered)]
        details = sorted(by_index.values(), key=lambda d: d["index"])
        if len(details) != len(names):
            raise ModelError(f"{path}: the metadata names {len(names)} outputs {list(names)} "
                             f"but the TFLite model has {len(details)}. Received: "
                             f"{sorted(outputs) or len(details)}")
        return list(zip(names, details))

    def _run(self, batch):
        d = self._in
        if d["dtype"] != batch.dtype and np.issubdtype(d["dtype"], np.integer) \
                and d["quantization"][0]:  # integer-only model: quantise the input
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(d["dtype"])
        elif d["dtype"] != batch.dtype:
            batch = batch.astype(d["dtype"])
        self._interp.set_tensor(d["index"], batch)
        self._interp.invoke()
        outs = {}
        for name, o in self._outs:
            y = self._interp.get_tensor(o["index"])
            if o["dtype"] != np.float32 and o["quantization"][0]:
                scale, zero = o["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            outs[name] = np.array(y)  # copy: the interpreter reuses its buffers
        return outs

    def describe(self) -> str:
        return f"tflite ({self.source}, batch {self.batch_size}, {self.threads} thread(s))"
