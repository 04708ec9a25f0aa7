"""Find the models under a folder and describe them: ``visionsuite models [DIR]`` lists them,
``visionsuite models show M`` prints one model's card (its metadata and training record).

Models are ``.keras`` / ``.tflite`` / ``.onnx`` files and SavedModel folders carrying
visionsuite metadata; files without it are listed as ``not a visionsuite model``.

Example:
    >>> for row in list_models("runs"):
    ...     print(row["path"], row["task"], row["metrics"])
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from visionsuite.errors import ModelError, UsageError
from visionsuite.runtime.metadata import read_metadata

MODEL_SUFFIXES = (".keras", ".tflite", ".onnx")
# metrics shown in the listing first, when a model has them
HEADLINE_METRICS = ("accuracy", "mean_iou", "miou", "dice", "mae", "top5_accuracy", "loss")


def find_models(folder: str | Path) -> list[Path]:
    """Model files and SavedModel folders under ``folder`` (sorted; hidden temporaries
    skipped)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UsageError(f"models: no such folder. Received: {folder}")
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES
             and not p.name.startswith(".")]
    found += [p.parent for p in folder.rglob("saved_model.pb")]
    return sorted(found)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _created(path: Path, record: dict) -> str:
    if record.get("created"):
        return str(record["created"])
    mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return mtime.isoformat(timespec="seconds") + " (file time)"


def _headline(metrics: dict, n: int = 2) -> dict:
    keys = [k for k in HEADLINE_METRICS if isinstance(metrics.get(k), (int, float))]
    keys += sorted(k for k, v in metrics.items() if isinstance(v, float) and k not in keys)
    return {k: metrics[k] for k in keys[:n]}


def describe(path: str | Path) -> dict:
    """One row of the listing: path, format, task, classes, backbone, metrics, size, created
    (``error`` instead when the file carries no readable visionsuite metadata)."""
    path = Path(path)
    row = {"path": str(path), "size_bytes": _size(path),
           "format": "savedmodel" if path.is_dir() else path.suffix.lstrip(".")}
    try:
        meta = read_metadata(path)
    except ModelError as exc:
        return dict(row, error=str(exc))
    record = meta.record or {}
    return dict(row, task=meta.task, classes=list(meta.classes), backbone=meta.backbone,
                metrics=record.get("metrics", {}), created=_created(path, record),
                commit=(record.get("git") or {}).get("commit"))


def list_models(folder: str | Path) -> list[dict]:
    return [describe(p) for p in find_models(folder)]


def format_row(row: dict) -> str:
    size = f"{row['size_bytes'] / 2**20:.2f} MiB"
    if "error" in row:
        return f"{row['path']}  ({row['format']}, {size}): not a visionsuite model"
    classes = row["classes"]
    shown = ", ".join(classes[:4]) + (f", ... ({len(classes)})" if len(classes) > 4 else "")
    metrics = " ".join(f"{k}={v:.4f}" for k, v in _headline(row["metrics"]).items()) or "-"
    return (f"{row['path']}  {row['format']}  task={row['task']}  classes=[{shown}]  "
            f"backbone={row['backbone'] or '-'}  {metrics}  {size}  created={row['created']}")


def model_card(path: str | Path) -> str:
    """A readable card: what the model is, how it was made, and how well it did."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"models show: no such model. Received: {path}")
    meta = read_metadata(path)
    rec = meta.record or {}
    lines = [f"# {path.name}", "",
             f"task:        {meta.task}",
             f"classes:     {len(meta.classes)}: {', '.join(meta.classes[:20])}"
             + (" ..." if len(meta.classes) > 20 else ""),
             f"backbone:    {meta.backbone or '-'}",
             f"input:       {meta.input_spec.to_dict()}",
             f"outputs:     {', '.join(meta.output_names)}",
             f"format:      {'savedmodel' if path.is_dir() else path.suffix.lstrip('.')}, "
             f"{_size(path) / 2**20:.2f} MiB",
             f"created:     {_created(path, rec)}"]
    if meta.extra.get("source"):
        lines.append(f"exported from: {meta.extra['source']} ({meta.extra.get('format')}, "
                     f"{meta.extra.get('quantize') or 'fp32'})")
    if not rec:
        lines += ["", "no training record (a model made before records, or not by "
                      "`visionsuite train`)"]
        return "\n".join(lines)
    git = rec.get("git")
    lines += ["", "## record",
              f"git commit:  {git['commit'] + (' (uncommitted changes)' if git['dirty'] else '')}"
              if git else "git commit:  - (not run inside a git work tree)"]
    for split, fp in (rec.get("data") or {}).items():
        lines.append(f"data {split + ':':<7}{fp.get('samples')} samples, {fp.get('files')} files, "
                     f"{fp.get('bytes', 0) / 1e6:.2f} MB, sha256 {str(fp.get('sha256'))[:16]}")
    packages = rec.get("packages") or {}
    lines.append("packages:    " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    metrics = rec.get("metrics") or {}
    lines += ["", "## metrics"] + [f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                                    for k, v in sorted(metrics.items())]
    config = rec.get("config") or {}
    lines += ["", "## config", json.dumps(config, indent=2, sort_keys=True, default=str)]
    return "\n".join(lines)
