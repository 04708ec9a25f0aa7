"""Where each model format keeps its :class:`~visionsuite.models.ModelMetadata`.

* ``.keras``: ``visionsuite.json`` inside the zip (see :mod:`visionsuite.models`).
* SavedModel folder: ``assets/visionsuite.json``.
* ``.tflite``: embedded in the flatbuffer as a metadata entry named ``visionsuite`` (the
  TFLite schema's ``Model.metadata`` list; interpreters ignore unknown entries), so the file
  is self-contained when copied. A sidecar ``<model>.tflite.json`` is read as a fallback,
  for ``.tflite`` files made by other tools (write one by hand to run such a model).

Reading TFLite metadata needs only ``ai-edge-litert``'s schema (no TensorFlow import).
"""

from __future__ import annotations

from pathlib import Path

from visionsuite.errors import ModelError
from visionsuite.models import METADATA_NAME, ModelMetadata, read_keras_metadata

TFLITE_METADATA_KEY = "visionsuite"


def savedmodel_metadata_path(folder: str | Path) -> Path:
    return Path(folder) / "assets" / METADATA_NAME


def sidecar_path(path: str | Path) -> Path:
    return Path(str(path) + ".json")


def is_savedmodel(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def embed_tflite_metadata(model_bytes: bytes, metadata: ModelMetadata) -> bytes:
    """Return ``model_bytes`` with ``metadata`` as the ``visionsuite`` metadata entry
    (replacing an existing one)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    model.metadata = [m for m in (model.metadata or [])
                      if _name(m.name) != TFLITE_METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = list(metadata.to_json().encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = TFLITE_METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_tflite_metadata(path: str | Path) -> ModelMetadata:
    """The metadata embedded in a ``.tflite`` file, else its sidecar ``<path>.json``."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    data = path.read_bytes()
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if _name(entry.Name()) == TFLITE_METADATA_KEY:
                raw = model.Buffers(entry.Buffer()).DataAsNumpy()
                return ModelMetadata.from_json(bytes(raw).decode("utf-8"), str(path))
    except ModelError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything
        raise ModelError(f"{path}: not a readable TFLite model ({type(exc).__name__})") from exc
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return ModelMetadata.from_json(sidecar.read_text(encoding="utf-8"), str(sidecar))
    raise ModelError(f"{path}: no visionsuite metadata (neither embedded nor in {sidecar.name}); "
                     f"export it with `visionsuite export` or write {sidecar.name}")


def read_metadata(path: str | Path) -> ModelMetadata:
    """Metadata of a ``.keras`` file, a SavedModel folder, a ``.tflite`` or ``.onnx`` file."""
    path = Path(path)
    if is_savedmodel(path):
        meta = savedmodel_metadata_path(path)
        if not meta.is_file():
            raise ModelError(f"{path}: SavedModel without visionsuite metadata "
                             f"(expected assets/{METADATA_NAME})")
        return ModelMetadata.from_json(meta.read_text(encoding="utf-8"), str(meta))
    if path.suffix == ".tflite":
        return read_tflite_metadata(path)
    if path.suffix == ".onnx":
        from visionsuite.runtime.onnx import read_onnx_metadata

        return read_onnx_metadata(path)
    if path.suffix == ".keras":
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return read_keras_metadata(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    raise ModelError(f"unsupported model format (expected .keras, .tflite, .onnx or a "
                     f"SavedModel folder). Received: {path}")
