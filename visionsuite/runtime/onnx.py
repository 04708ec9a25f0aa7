"""ONNX export and ONNX Runtime inference (the optional ``visionsuite[onnx]`` extra).

Export goes through ``tf2onnx.convert.from_keras`` (opset 17, batch axis left dynamic, one
input named ``input``). Keras 3.15's own ``model.export(format="onnx")`` calls the same
tf2onnx internally and took longer in our measurement (MobileNetV3-Small 96 px: 28.5 s vs
20.0 s, both exact to 0.0 max abs difference in ONNX Runtime), so the direct call is used.
On MobileNetV3 tf2onnx's transpose optimiser fails ("Failed to apply optimize_transpose") and
leaves the graph unoptimised; the exported model is still correct (the parity check of
``visionsuite export`` says so), only slower. Its log lines are silenced.

The :class:`~visionsuite.models.ModelMetadata` JSON travels inside the file as the model's
``metadata_props`` entry ``visionsuite`` (ONNX's own key/value metadata), so a copied ``.onnx``
file is self-contained; a sidecar ``<model>.onnx.json`` is read as a fallback for files made
by other tools.

Example:
    >>> write_onnx(keras_model, metadata, "best.onnx")
    >>> model = OnnxModel("best.onnx", read_onnx_metadata("best.onnx"))
    >>> model(batch)["probabilities"].shape
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError, UsageError
from visionsuite.models import ModelMetadata
from visionsuite.runtime.backends import InferenceModel

ONNX_METADATA_KEY = "visionsuite"
OPSET = 17
EXTRA_HINT = "install the ONNX extra: pip install 'visionsuite[onnx]'"


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"ONNX support needs the {module} package ({exc}); {EXTRA_HINT}") from exc


def keras_to_onnx(model, metadata: ModelMetadata, out: str | Path) -> Path:
    """Convert a Keras model to ``out`` (.onnx) with ``metadata`` embedded; atomic."""
    import tensorflow as tf

    tf2onnx = _require("tf2onnx")
    onnx = _require("onnx")
    from visionsuite.files import atomic_path

    for name in ("tf2onnx", "tf2onnx.optimizer", "tf2onnx.tfonnx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    spec = metadata.input_spec
    signature = (tf.TensorSpec((None, *spec.shape), spec.dtype, name="input"),)
    out = Path(out)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelError(f"ONNX conversion failed ({type(exc).__name__}: {first})") from exc
    n_out = len(proto.graph.output)
    if n_out != len(metadata.output_names):
        raise ModelError(f"ONNX conversion gave {n_out} outputs but the metadata names "
                         f"{list(metadata.output_names)}. Received: {n_out} outputs")
    # the metadata keeps the graph's output names in metadata order (Keras output order)
    from visionsuite.runtime.convert import with_extra

    meta = with_extra(metadata, onnx_outputs=[o.name for o in proto.graph.output])
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()
    with atomic_path(out, keep_suffix=True) as tmp:
        onnx.save_model(proto, str(tmp))
    return out


def read_onnx_metadata(path: str | Path) -> ModelMetadata:
    """The metadata embedded in an ``.onnx`` file, else its sidecar ``<path>.json``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    props = None
    try:
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # a damaged protobuf raises anything
            raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
        props = {p.key: p.value for p in proto.metadata_props}
    except ImportError:
        ort = _require("onnxruntime")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from exc
        props = dict(session.get_modelmeta().custom_metadata_map)
    if ONNX_METADATA_KEY in props:
        return ModelMetadata.from_json(props[ONNX_METADATA_KEY], str(path))
    sidecar = Path(str(path) + ".json")
    if sidecar.is_file():
        return ModelMetadata.from_json(sidecar.read_text(encoding="utf-8"), str(sidecar))
    raise ModelError(f"{path}: no visionsuite metadata (neither embedded nor in {sidecar.name}); "
                     f"export it with `visionsuite export --format onnx` or write {sidecar.name}")


class OnnxModel(InferenceModel):
    """An ``.onnx`` model run by ONNX Runtime (CPU, or CUDA when its provider is installed).

    Args:
        path: the ``.onnx`` file.
        metadata: its metadata (see :func:`read_onnx_metadata`).
        batch_size: frames per call.
        threads: intra-op threads (default 1, like the TFLite backend).

    Example:
        >>> model = OnnxModel("best.onnx", read_onnx_metadata("best.onnx"), threads=2)
        >>> model(np.zeros((1, 224, 224, 3), np.float32))["probabilities"]
    """

    runtime = "onnx"

    def __init__(self, path, metadata, batch_size=1, threads=None):
        super().__init__(metadata, path, batch_size)
        ort = _require("onnxruntime")
        self.threads = int(threads or 1)
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1. Received: threads={threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in available]
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise ModelError(f"{path}: cannot load ONNX model ({type(exc).__name__}: "
                             f"{first})") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one input tensor. Received: {len(inputs)}")
        self._input = inputs[0].name
        graph_outputs = [o.name for o in self._session.get_outputs()]
        names = self.output_names
        order = metadata.extra.get("onnx_outputs")
        if order and set(order) <= set(graph_outputs) and len(order) == len(names):
            self._outputs = list(zip(names, order))
        elif set(names) <= set(graph_outputs):
            self._outputs = [(n, n) for n in names]
        elif len(graph_outputs) == len(names):
            self._outputs = list(zip(names, graph_outputs))
        else:
            raise ModelError(f"{path}: the metadata names {len(names)} outputs {list(names)} "
                             f"but the ONNX model has {len(graph_outputs)}. Received: "
                             f"{graph_outputs}")

    def _run(self, batch):
        values = self._session.run([g for _, g in self._outputs], {self._input: batch})
        return {n: np.asarray(v) for (n, _), v in zip(self._outputs, values)}

    def describe(self) -> str:
        providers = ",".join(p.replace("ExecutionProvider", "")
                             for p in self._session.get_providers())
        return (f"onnx ({self.source}, batch {self.batch_size}, {self.threads} thread(s), "
                f"{providers})")
