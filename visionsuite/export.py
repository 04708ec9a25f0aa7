"""Export a ``.keras`` model to a SavedModel folder or a TFLite file, then check parity.

    visionsuite export --model best.keras --format tflite [--quantize fp16|int8 \\
        --calibration-data DIR]

The exported model carries the visionsuite metadata (task, classes, input size; see
:mod:`visionsuite.runtime.metadata`), so ``visionsuite run --model best.tflite`` needs no
other flags. After exporting, the Keras model and the export run on the same sample inputs
-- calibration images when given, else seeded synthetic images -- and the maximum / mean
absolute difference of their outputs and the agreement of their argmax (top-1 for a
classifier, per pixel for a segmenter) are printed and saved as ``<export>.parity.json``.

Example:
    >>> report = export_model("best.keras", "tflite", quantize="int8", calibration_data="val/")
    >>> report["parity"]["argmax_agreement"]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError

FORMATS = ("savedmodel", "tflite")
MAX_CALIBRATION = 200


def default_output(model_path: Path, fmt: str, quantize: str | None, cwd: bool) -> Path:
    stem = model_path.stem + (f".{quantize}" if quantize else "")
    folder = Path.cwd() if cwd else model_path.parent
    return folder / (f"{stem}.tflite" if fmt == "tflite" else f"{stem}_savedmodel")


def calibration_images(task, folder: str | Path, spec,
                       limit: int = MAX_CALIBRATION) -> list[np.ndarray]:
    """Up to ``limit`` images of ``folder`` (recursively) preprocessed as the model's input
    (``spec``, an image spec; a clip repeats the image over its frames)."""
    from visionsuite.data.images import list_images, read_image
    from visionsuite.specs import InputSpec

    if spec.layout == "DHWC":
        raise UsageError("calibration images cannot make volume inputs; export without "
                         "--calibration-data (parity on synthetic volumes). Received: DHWC")
    paths, _ = list_images(folder, recursive=True)
    if not paths:
        raise DataError(f"--calibration-data: no readable images in {folder}")
    step = max(1, len(paths) // limit)
    frame = InputSpec.image(spec.spatial, spec.channels)
    out = []
    for p in paths[::step][:limit]:
        x, _ = task.preprocess(read_image(p), frame)
        x = np.asarray(x, np.float32)
        out.append(np.repeat(x[None], spec.frames, 0) if spec.layout == "THWC" else x)
    return out


def synthetic_inputs(n: int, spec, seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs of ``spec``'s shape in its value range: noise, gradients and blobs (a
    spread of activations); clips and volumes get one such pattern per frame or slice."""
    rng = np.random.default_rng(seed)
    h, w = spec.spatial
    c = spec.channels
    low, high = spec.value_range
    yy, xx = np.mgrid[:h, :w] / max(max(h, w) - 1, 1)
    out = []
    for i in range(n):
        planes = []
        for j in range(spec.frames or 1):
            kind = (i + j) % 3
            if kind == 0:
                img = rng.uniform(0, 1, (h, w, c))
            elif kind == 1:
                a = rng.uniform(0, 1, c)
                img = xx[..., None] * a + yy[..., None] * (1 - a)
            else:
                cy, cx, r = rng.uniform(0.2, 0.8, 3)
                blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < (r / 2) ** 2)[..., None]
                img = np.where(blob, rng.uniform(0, 1, c), rng.uniform(0, 1, c))
            planes.append(low + img * (high - low))
        item = np.stack(planes) if spec.frames else planes[0]
        out.append(item.astype(np.dtype(spec.dtype)))
    return out


def parity(reference: dict, candidate: dict) -> dict:
    """Max / mean absolute difference over every named output, and the argmax agreement of
    the first (class scores: top-1 for a classifier, per pixel for a segmenter)."""
    names = list(reference)
    diffs = [np.abs(np.asarray(reference[k], np.float64) - np.asarray(candidate[k], np.float64))
             for k in names]
    out = {"max_abs_diff": float(max(d.max() for d in diffs)),
           "mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
           "outputs": {k: float(d.max()) for k, d in zip(names, diffs)}}
    first_ref, first_cand = np.asarray(reference[names[0]]), np.asarray(candidate[names[0]])
    if first_ref.ndim >= 2 and first_ref.shape[-1] > 1:
        agree = np.argmax(first_ref, -1) == np.argmax(first_cand, -1)
        out["argmax_agreement"] = float(agree.mean())
    return out


def export_model(model: str | Path, format: str, *, quantize: str | None = None,
                 calibration_data: str | Path | None = None, out: str | Path | None = None,
                 samples: int = 16, task=None) -> dict:
    """Export ``model`` (``.keras`` or ``imagenet:<backbone>``) and check parity.

    Args:
        format: "savedmodel" or "tflite".
        quantize: TFLite only: None (fp32), "fp16" or "int8" (needs ``calibration_data``).
        calibration_data: a folder of representative images (int8 calibration, and the
            parity inputs).
        out: the output file / folder (default: beside the model, e.g. ``best.int8.tflite``
            or ``best_savedmodel``).
        samples: inputs used for the parity check.
        task: the Task instance that preprocesses calibration images (default: the plugin
            named in the model's metadata).

    Returns:
        The report saved as ``<out>.parity.json``: paths, sizes, conversion time, parity.
    """
    from visionsuite.models import load_keras_model
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import IMAGENET_PREFIX, load_runtime, resolve_model
    from visionsuite.runtime import convert
    from visionsuite.runtime.backends import KerasModel

    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}. Received: format={format!r}")
    if quantize in ("none", "fp32"):
        quantize = None
    if quantize not in convert.QUANTIZE:
        raise UsageError(f"--quantize must be fp16 or int8. Received: quantize={quantize!r}")
    if quantize and format != "tflite":
        raise UsageError(f"quantisation applies to TFLite exports only. Received: "
                         f"format={format}, quantize={quantize}")
    if quantize == "int8" and calibration_data is None:
        raise UsageError("int8 quantisation needs --calibration-data DIR (representative images)")
    path, metadata = resolve_model(model)
    if path.suffix != ".keras":
        raise UsageError(f"export starts from a .keras model. Received: model={model}")
    out_path = Path(out) if out else default_output(path, format, quantize,
                                                    str(model).startswith(IMAGENET_PREFIX))
    if format == "tflite" and out_path.suffix != ".tflite":
        raise UsageError(f"a TFLite export must end in .tflite. Received: out={out_path}")
    from visionsuite.files import check_writable

    check_writable(out_path, "folder" if format == "savedmodel" else "export")  # before converting
    spec = metadata.input_spec
    task = task_for_model(metadata, task, source=str(path))
    calibration = (calibration_images(task, calibration_data, spec)
                   if calibration_data is not None else None)

    keras_model = load_keras_model(path)
    meta = convert.with_extra(metadata, source=path.name, source_sha256=convert.file_sha256(path),
                              format=format, quantize=quantize)
    started = time.perf_counter()
    if format == "tflite":
        data = convert.keras_to_tflite(keras_model, meta, quantize=quantize,
                                       representative=(lambda: iter(calibration))
                                       if calibration else None)
        convert.write_tflite(out_path, data)
    else:
        convert.keras_to_savedmodel(keras_model, meta, out_path)
    seconds = time.perf_counter() - started

    inputs = (calibration[:samples] if calibration else synthetic_inputs(samples, spec))
    batch = np.stack(inputs)
    reference = KerasModel(keras_model, metadata, path, batch_size=1)(batch)
    exported = load_runtime(out_path, runtime=format)(batch)
    report = {
        "model": str(path),
        "export": str(out_path),
        "format": format,
        "quantize": quantize or "fp32",
        "seconds": round(seconds, 2),
        "size_bytes": _size(out_path),
        "source_size_bytes": path.stat().st_size,
        "parity": {"samples": len(inputs),
                   "inputs": "calibration images" if calibration else "synthetic (seeded)",
                   **task.parity(reference, exported)},
    }
    report_path = out_path.with_name(out_path.name + ".parity.json")
    from visionsuite.files import write_json_atomic

    write_json_atomic(report_path, report)
    report["report"] = str(report_path)
    return report


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def format_report(report: dict) -> str:
    p = report["parity"]
    agree = (f", argmax agreement {p['argmax_agreement'] * 100:.1f}%"
             if "argmax_agreement" in p else "")
    return (f"exported {report['export']} ({report['format']} {report['quantize']}, "
            f"{report['size_bytes'] / 2**20:.2f} MiB, {report['seconds']:.1f} s)\n"
            f"parity vs Keras on {p['samples']} {p['inputs']}: max abs diff "
            f"{p['max_abs_diff']:.3g}, mean abs diff {p['mean_abs_diff']:.3g}{agree}\n"
            f"report: {report['report']}")


__all__: Sequence[str] = ("FORMATS", "export_model", "format_report", "parity")
