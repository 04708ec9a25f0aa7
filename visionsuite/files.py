"""Atomic file writes: a kill never leaves a half-written file at the destination."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = False,
                      default=None) -> Path:
    """Write ``data`` as indented JSON (with a final newline) atomically."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, default=default) + "\n"
    return write_bytes_atomic(path, text.encode())


@contextlib.contextmanager
def atomic_output(path: str | Path, *, suffix: str | None = None):
    """A temporary path beside ``path`` for writers that need a file name (OpenCV, PIL,
    matplotlib, Keras); renamed to ``path`` when the block ends without an error, removed
    otherwise. ``suffix`` (default: ``path``'s) lets the writer pick its format by extension.

    Example:
        >>> with atomic_output("out/mask.png") as tmp:
        ...     cv2.imwrite(str(tmp), mask)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers create the file themselves (some refuse to overwrite)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()
