"""Inference runtimes: one interface over Keras, SavedModel and TFLite (``ai-edge-litert``).

    >>> from visionsuite.runtime import load_runtime
    >>> model = load_runtime("runs/classification/demo/best.keras")   # auto: fp32 TFLite on CPU
    >>> model.metadata.task, model.metadata.classes
    >>> scores = model(batch)        # float32 (N, S, S, 3) RGB in [0, 255] -> numpy

Model references (``model_ref``):

* a ``.keras`` file written by visionsuite (metadata inside the zip);
* a SavedModel folder written by ``visionsuite export`` (metadata in ``assets/visionsuite.json``);
* a ``.tflite`` file written by ``visionsuite export`` (metadata embedded in the flatbuffer, or a
  sidecar ``<model>.tflite.json``);
* a ``.onnx`` file written by ``visionsuite export --format onnx`` (metadata in the model's
  ``metadata_props``; runs with ONNX Runtime from the ``visionsuite[onnx]`` extra);
* ``imagenet:<backbone>``: a ready-made 1000-class ImageNet classifier
  (:mod:`visionsuite.backbones.pretrained`), saved once as ``.keras`` in the cache.

Runtimes (``runtime``): ``auto`` picks, for a ``.keras`` model, a compiled ``tf.function`` on a
GPU and otherwise its fp32 TFLite conversion (3-4x faster than a ``tf.function`` on CPU, see
FACTS.md). The conversion is cached beside the model as ``<stem>.fp32.tflite`` and rebuilt when
the ``.keras`` file's SHA-256 changes (stored in the cached file's metadata); where the model's
folder is not writable the cache folder is used. A SavedModel runs as ``savedmodel`` and a
``.tflite`` file as ``tflite``. ``keras|savedmodel|tflite`` override the choice (a ``.keras``
model can run as any of them; the conversions are cached the same way).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from visionsuite.errors import ModelError, UsageError, did_you_mean
from visionsuite.models import ModelMetadata
from visionsuite.runtime.backends import InferenceModel, KerasModel, SavedModelModel, TFLiteModel
from visionsuite.runtime.metadata import is_savedmodel, read_metadata

__all__ = ["InferenceModel", "RUNTIMES", "load_runtime", "resolve_model", "gpu_available"]

log = logging.getLogger("visionsuite.runtime")

RUNTIMES = ("auto", "keras", "savedmodel", "tflite", "onnx")
IMAGENET_PREFIX = "imagenet:"


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU. TensorFlow is imported only where an NVIDIA driver is
    present, so CPU machines skip the import."""
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _imagenet_keras(name: str) -> Path:
    """``imagenet:<name>`` as a ``.keras`` file in the cache (built and saved once)."""
    from visionsuite.assets import cache_dir
    from visionsuite.backbones.pretrained import (
        CLASSIFIERS,
        imagenet_class_names,
        imagenet_classifier,
    )
    from visionsuite.backbones.registry import get_backbone_entry
    from visionsuite.models import save_keras_model

    if name not in CLASSIFIERS:
        raise UsageError(f"no ImageNet classifier for {name!r}.{did_you_mean(name, CLASSIFIERS)} "
                         f"Received: model={IMAGENET_PREFIX}{name}")
    size = int(get_backbone_entry(name).default_input_size)
    path = cache_dir("models") / f"imagenet_{name}_{size}.keras"
    if not path.is_file():
        log.warning("building %s%s once (saved to %s)", IMAGENET_PREFIX, name, path)
        classes = tuple(imagenet_class_names())
        model = imagenet_classifier(name, input_size=size)
        meta = ModelMetadata(task="classification", classes=classes, input_size=size,
                             backbone=name, task_config={"image_size": size},
                             extra={"weights": "imagenet"})
        save_keras_model(model, path, meta)
    return path


def resolve_model(model_ref: str | Path) -> tuple[Path, ModelMetadata]:
    """The file or folder a model reference points to, and its metadata."""
    ref = str(model_ref)
    if ref.startswith(IMAGENET_PREFIX):
        path = _imagenet_keras(ref[len(IMAGENET_PREFIX):])
    else:
        path = Path(ref).expanduser()
    return path, read_metadata(path)


def _kind(path: Path) -> str:
    if is_savedmodel(path):
        return "savedmodel"
    if path.suffix == ".onnx":
        return "onnx"
    return "tflite" if path.suffix == ".tflite" else "keras"


def _stream_task(metadata: ModelMetadata, source: Path, task=None):
    """``task`` (default: the model's task as saved) when its class defines a stream variant
    (:meth:`Task.stream_model`), else ``None`` (decided without loading the model)."""
    from visionsuite.plugins import task_for_model
    from visionsuite.task import Task

    if not isinstance(task, Task):
        try:
            task = task_for_model(metadata, None, source=str(source))
        except Exception:  # an unknown task: the plain model runs
            return None
    return task if type(task).stream_model is not Task.stream_model else None


def _stream_variant(task, model, metadata: ModelMetadata, probe: bool = False):
    """``(variant model, metadata with its outputs)`` or ``None``; ``probe``: only whether
    the task, as configured, makes one (``task.stream_model(None)``, without a model)."""
    if probe:
        return True if task.stream_model(None) is not None else None
    made = task.stream_model(model)
    if made is None:
        return None
    variant, outputs = made
    return variant, dataclasses.replace(metadata, outputs=tuple(outputs))


def _cached_conversion(path: Path, metadata: ModelMetadata, target: str,
                       stream=False) -> Path:
    """``path`` (.keras) converted to ``target`` ("tflite" fp32 or "savedmodel"), cached
    beside it and rebuilt when the source's SHA-256 changes. ``stream``: the task's stream
    variant (:meth:`~visionsuite.task.Task.stream_model`) instead, as
    ``<stem>.stream.fp32.tflite``."""
    from visionsuite.runtime import convert

    task = _stream_task(metadata, path, stream) if stream and target == "tflite" else None
    if task is not None and _stream_variant(task, None, metadata, probe=True) is None:
        task = None  # the task, as configured, makes no variant: nothing to load
    if stream and task is None:
        return _cached_conversion(path, metadata, target)
    digest = convert.file_sha256(path)
    name = f"{path.stem}.fp32.tflite" if target == "tflite" else f"{path.stem}.savedmodel"
    if task is not None:
        name = f"{path.stem}.stream.fp32.tflite"
    candidates = [path.parent / name]
    from visionsuite.assets import cache_dir

    candidates.append(cache_dir("runtime", digest[:16]) / name)
    for cached in candidates:
        if cached.exists():
            try:
                if read_metadata(cached).extra.get("source_sha256") == digest:
                    return cached
            except ModelError:
                pass
    out = candidates[0] if os.access(path.parent, os.W_OK) else candidates[1]
    from visionsuite.models import load_keras_model

    model = load_keras_model(path)  # first: a model that cannot load fails in one line
    if task is not None:
        made = _stream_variant(task, model, metadata)
        if made is None:
            return _cached_conversion(path, metadata, target)
        model, metadata = made
    log.warning("converting %s to %s (once; cached as %s)", path, target, out)
    meta = convert.with_extra(metadata, source_sha256=digest, source=path.name,
                              format=target, quantize=None,
                              **({"variant": "stream"} if task is not None else {}))
    if target == "tflite":
        convert.write_tflite(out, convert.keras_to_tflite(model, meta))
    else:
        convert.keras_to_savedmodel(model, meta, out)
    return out


def load_runtime(model_ref: str | Path, runtime: str = "auto", threads: int | None = None,
                 batch_size: int = 1, stream=False) -> InferenceModel:
    """Load a model for inference.

    Args:
        model_ref: a ``.keras`` / ``.tflite`` file, a SavedModel folder or
            ``imagenet:<backbone>`` (see the module docstring).
        runtime: "auto", "keras", "savedmodel", "tflite" or "onnx" (``.onnx`` files only).
        threads: TFLite / ONNX Runtime threads (default 1); ignored by the other runtimes.
        batch_size: frames per call the model is prepared for.
        stream: for a ``.keras`` model under the ``keras`` or ``tflite`` runtime, run its
            task's stream variant when the task makes one (:meth:`Task.stream_model`:
            outputs the stream's ``postprocess`` reads cheaply, e.g. a segmentation model's
            uint8 ``labels`` with ``native_labels`` on): ``True`` asks the task saved in the
            model, a Task instance asks that one (:func:`visionsuite.run` passes its task).

    Returns:
        An :class:`InferenceModel`: ``.metadata`` and ``model(batch) -> numpy``.
    """
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}.{did_you_mean(runtime, RUNTIMES)} "
                         f"Received: runtime={runtime!r}")
    path, metadata = resolve_model(model_ref)
    kind = _kind(path)
    if runtime == "auto":
        runtime = kind if kind != "keras" else ("keras" if gpu_available() else "tflite")
    if kind == "onnx" or runtime == "onnx":
        if kind != "onnx":
            raise UsageError(f"the onnx runtime runs .onnx files; make one with `visionsuite "
                             f"export --format onnx`. Received: model={model_ref}")
        from visionsuite.runtime.onnx import OnnxModel

        return OnnxModel(path, metadata, batch_size, threads)
    if kind == "tflite" and runtime != "tflite" or kind == "savedmodel" and runtime == "keras":
        raise UsageError(f"a {kind} model cannot run with the {runtime} runtime; export the "
                         f".keras model instead. Received: model={model_ref}, runtime={runtime}")
    if runtime == "keras":
        from visionsuite.models import load_keras_model

        model = load_keras_model(path)
        task = _stream_task(metadata, path, stream) if stream else None
        made = _stream_variant(task, model, metadata) if task is not None else None
        if made is not None:
            model, metadata = made
        return KerasModel(model, metadata, path, batch_size)
    if runtime == "savedmodel":
        if kind == "keras":
            path = _cached_conversion(path, metadata, "savedmodel")
        return SavedModelModel(path, metadata, batch_size)
    if kind == "keras":
        path = _cached_conversion(path, metadata, "tflite", stream=stream)
    elif kind == "savedmodel":
        raise UsageError(f"convert a .keras model to TFLite with `visionsuite export`; a "
                         f"SavedModel runs with --runtime savedmodel. Received: model={model_ref}")
    return TFLiteModel(path, read_metadata(path), batch_size, threads)
