"""Atomic file writes: a kill never leaves a half-written file at the destination.

Every file visionsuite writes whole (models, checkpoints, curves, JSON reports, exports) goes
through :func:`atomic_path`: the data is written to a hidden temporary file beside the
destination (``.<name>.<random>.tmp<suffix>``), given the permissions a plain ``open()``
would give it (``0666`` less the umask, so ``0644`` under the usual umask ``022``; the
temporary file itself starts private) and renamed over the destination. A process killed
mid-write leaves only the hidden temporary file, which :func:`remove_stale_temps` deletes the
next time a run starts in that folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from visionsuite.errors import VisionsuiteError

# Hidden temporary files of atomic writes (and the names older versions used).
TEMP_PATTERNS = (".*.tmp", ".*.tmp.*", ".checkpoint.*.tmp", ".best.*.keras", ".last.*.keras",
                 ".metrics.*.csv", ".curves.*.png")


class OutputError(VisionsuiteError):
    """An output file or folder that cannot be written (read-only folder, a folder where a
    file is expected, disk full)."""


def _why(exc: OSError) -> str:
    reasons = {errno.EACCES: "permission denied (is the folder read-only?)",
               errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
               errno.ENOSPC: "no space left on the device",
               errno.ENOTDIR: "a parent of it is a file, not a folder",
               errno.EISDIR: "it is a folder"}
    return reasons.get(exc.errno, exc.strerror or type(exc).__name__)


def check_writable(path: str | Path, what: str = "output") -> Path:
    """Fail early, with one line, when ``path`` could not be written (its nearest existing
    folder is read-only, or a parent is a file); creates nothing."""
    path = Path(path)
    if path.is_dir() and what != "folder":
        raise OutputError(f"cannot write {what} {path}: it is a folder; give a file name. "
                          f"Received: {path}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: {parent} is a file, not a folder. "
                          f"Received: {path}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {path}: {parent} is not writable (read-only "
                          f"folder?). Received: {path}")
    return path


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting
    it, which would briefly affect files other threads create)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception the
    file gets the umask's permissions and replaces ``path`` atomically, otherwise it is
    deleted.

    Args:
        path: the destination; its folder is created if needed.
        keep_suffix: end the temporary name with ``path``'s suffix too (for writers that
            choose the format by suffix, e.g. ``keras.Model.save`` needs ``.keras``).

    Example:
        >>> with atomic_path("runs/x/best.keras", keep_suffix=True) as tmp:
        ...     model.save(tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name. "
                          f"Received: {path}")
    suffix = ".tmp" + (path.suffix if keep_suffix else "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}. Received: {path}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_mode())  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except OSError as exc:  # disk full, destination turned read-only or into a folder
        raise OutputError(f"cannot write {path}: {_why(exc)}. Received: {path}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return path


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = False,
                      default=None) -> Path:
    """Write ``data`` as indented JSON (with a final newline) atomically."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, default=default) + "\n"
    return write_bytes_atomic(path, text.encode())


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the hidden temporary files that killed writers left in ``folder`` (the files
    they were meant to replace are intact). Returns what was deleted."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for pattern in TEMP_PATTERNS:
        for stale in folder.glob(pattern):
            if stale.is_file() and stale not in removed:
                stale.unlink(missing_ok=True)
                removed.append(stale)
    return removed
