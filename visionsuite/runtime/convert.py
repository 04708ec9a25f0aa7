"""Conversions between model formats: ``.keras`` -> TFLite (fp32, fp16, int8) or SavedModel,
each carrying the visionsuite metadata (see :mod:`visionsuite.runtime.metadata`)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError, UsageError
from visionsuite.models import METADATA_NAME, ModelMetadata
from visionsuite.files import write_bytes_atomic
from visionsuite.runtime.metadata import embed_tflite_metadata

QUANTIZE = (None, "fp16", "int8")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def with_extra(metadata: ModelMetadata, **extra) -> ModelMetadata:
    return dataclasses.replace(metadata, extra={**metadata.extra, **extra})


def keras_to_tflite(model, metadata: ModelMetadata, *, quantize: str | None = None,
                    representative: Callable[[], Iterable[np.ndarray]] | None = None) -> bytes:
    """Convert a Keras model to TFLite bytes with ``metadata`` embedded.

    Args:
        quantize: None (fp32), "fp16" (float16 weights) or "int8" (full integer kernels
            calibrated on ``representative``; float32 input and output are kept).
        representative: a callable yielding single float32 inputs ``(S, S, 3)`` in [0, 255],
            required for "int8".
    """
    import tensorflow as tf

    if quantize not in QUANTIZE:
        raise UsageError(f"quantize must be one of fp16, int8 or none. Received: quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise UsageError("int8 quantisation needs calibration images (--calibration-data DIR)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(x, np.float32)[None]]
                                                    for x in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # keras prints its export summary
            data = converter.convert()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelError(f"TFLite conversion failed ({type(exc).__name__}: {first})") from exc
    return embed_tflite_metadata(data, metadata)


def keras_to_savedmodel(model, metadata: ModelMetadata, out_dir: str | Path) -> Path:
    """Export a Keras model as a SavedModel folder (endpoint ``serve``) with the metadata in
    ``assets/visionsuite.json``. The folder appears whole or not at all."""
    from visionsuite.files import OutputError

    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"cannot write the SavedModel folder {out_dir}: "
                          f"{exc.strerror or exc}. Received: out={out_dir}") from None
    try:
        target = tmp / "model"
        model.export(str(target), format="tf_saved_model", verbose=False)
        (target / "assets").mkdir(exist_ok=True)
        (target / "assets" / METADATA_NAME).write_text(metadata.to_json(), encoding="utf-8")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "model")
            os.replace(target, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def write_tflite(path: str | Path, data: bytes) -> Path:
    return write_bytes_atomic(Path(path), data)
