"""How a model was made: the record every training run writes into
:attr:`visionsuite.models.ModelMetadata.record` (and so into every file exported from it).

A record holds:

* ``created``: UTC time the record was written (ISO 8601);
* ``git``: ``{"commit", "dirty"}`` of the repository holding the working folder, or ``None``
  outside one (the run's code version, when the team keeps its configs in git);
* ``config``: the resolved training config (every default filled in);
* ``data``: a fingerprint per split -- sample count, file count, bytes and a SHA-256 over the
  sorted ``path<TAB>size`` lines (in-memory arrays are hashed by content), so two runs can be
  checked for "same data" without keeping the file list;
* ``packages``: versions of the stack (TensorFlow, Keras, NumPy, LiteRT, OpenCV, visionsuite);
* ``metrics``: the final evaluation of the saved model (added when training ends).

Example:
    >>> rec = make_record(config=to_dict(cfg), data={"train": data_fingerprint(train_set)})
    >>> rec["data"]["train"]["sha256"][:12]
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any

RECORD_PACKAGES = ("visionsuite", "tensorflow", "keras", "numpy", "ai-edge-litert",
                   "opencv-python-headless", "opencv-python", "albumentations", "onnxruntime")


def git_state(folder: str | Path = ".") -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the git work tree holding ``folder``, else None."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _paths(value: Any) -> list[str]:
    if isinstance(value, (str, Path)) and str(value) and os.path.isfile(value):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(v)]
    return []


def data_fingerprint(dataset) -> dict:
    """Fingerprint of a :class:`~visionsuite.task.Dataset`: counts and a SHA-256 over the
    sorted ``path<TAB>size`` lines of its files (images and file targets such as masks) plus
    the content of in-memory images. Same files, same sizes -> same hash."""
    import numpy as np

    lines, arrays, total = set(), hashlib.sha256(), 0
    n_arrays = 0
    for sample in dataset.samples:
        for value in (sample.image, sample.target):
            for path in _paths(value):
                size = os.path.getsize(path)
                lines.add(f"{os.path.abspath(path)}\t{size}")
            if isinstance(value, np.ndarray) and value is sample.image:
                arrays.update(str(value.shape).encode())
                arrays.update(np.ascontiguousarray(value).tobytes())
                n_arrays += 1
    digest = hashlib.sha256("\n".join(sorted(lines)).encode())
    if n_arrays:
        digest.update(arrays.digest())
    total = sum(int(ln.rsplit("\t", 1)[1]) for ln in lines)
    return {"samples": len(dataset.samples), "files": len(lines), "in_memory": n_arrays,
            "bytes": total, "classes": list(dataset.classes), "sha256": digest.hexdigest()}


def safe_fingerprint(dataset) -> dict:
    """:func:`data_fingerprint`, or ``{"error": ...}``: a record never fails a run."""
    try:
        return data_fingerprint(dataset)
    except Exception as exc:  # noqa: BLE001 - unusual sample types of outside tasks
        return {"samples": len(dataset.samples), "error": f"{type(exc).__name__}: {exc}"[:200]}


def package_versions() -> dict[str, str]:
    out = {}
    for name in RECORD_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _plain(value):
    """JSON-ready numbers (NumPy scalars and the like become float/int)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            return str(value)
    return value


def make_record(*, config: dict, data: dict, metrics: dict | None = None,
                folder: str | Path = ".") -> dict:
    """A record (see the module docstring) for a run in ``folder``'s git work tree."""
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(folder),
        "config": _plain(config),
        "data": _plain(data),
        "packages": package_versions(),
        "metrics": _plain(metrics or {}),
    }
