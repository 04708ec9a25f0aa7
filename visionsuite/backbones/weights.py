"""ImageNet weights of the keras.applications families: keras' own download and cache.

The files are the ones ``keras.applications`` downloads (same names, URLs and hashes) into the
Keras cache folder ``$KERAS_HOME/models`` (default ``~/.keras/models``; ``KERAS_HOME`` is read
when the weights are asked for, not when Keras was imported). A file already in that folder is
used as is, without the network, so weights can be copied there by hand on an offline machine.
When a file is missing and cannot be downloaded, :func:`fetch_keras_weights` fails within
seconds with one line naming the file, its URL and the folder where it can be placed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
from pathlib import Path

from visionsuite.errors import ModelError, VisionsuiteError

# Seconds a single connect / read of a weights download may block (not the whole download).
SOCKET_TIMEOUT_S = float(os.environ.get("VISIONSUITE_DOWNLOAD_TIMEOUT", "20"))


class WeightsUnavailableError(VisionsuiteError):
    """Pretrained weights that are neither cached nor downloadable right now."""


@dataclasses.dataclass(frozen=True)
class KerasWeights:
    """One weights file that keras.applications downloads.

    Args:
        fname: file name in the Keras cache (exactly what keras.applications uses).
        origin: URL it is downloaded from.
        file_hash: md5 or sha256 that keras checks after downloading (``None``: no check).
    """

    # (str) file name inside $KERAS_HOME/models
    fname: str
    # (str) download URL
    origin: str
    # (str | None) hash keras verifies after a download
    file_hash: str | None = None


def keras_cache_dir() -> Path:
    """``$KERAS_HOME/models`` (``~/.keras/models`` when ``KERAS_HOME`` is unset)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def cached_path(weights: KerasWeights) -> Path:
    """Where the file is (or would be) in the Keras cache."""
    return keras_cache_dir() / weights.fname


def weights_source(weights: KerasWeights) -> tuple[str, bool]:
    """``(description, is_present)`` for listings."""
    path = cached_path(weights)
    return f"Keras cache {path}", path.is_file()


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    # keras.utils.get_file -> urlretrieve opens its socket without a timeout; a blocked
    # connection would hang. The default timeout is restored right after the download.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_keras_weights(weights: KerasWeights) -> Path:
    """The cached weights file, downloaded by ``keras.utils.get_file`` when missing.

    Raises:
        WeightsUnavailableError: the file is not cached and the download failed (one line
            with the file name, the URL and the cache folder).
    """
    path = cached_path(weights)
    if path.is_file():
        return path
    import keras

    folder = keras_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)  # else keras falls back to /tmp/.keras
    try:
        with _socket_timeout(SOCKET_TIMEOUT_S):
            got = keras.utils.get_file(weights.fname, weights.origin, cache_subdir="models",
                                       cache_dir=str(folder.parent), file_hash=weights.file_hash)
    except Exception as exc:  # keras raises a bare Exception("URL fetch failure on ...")
        reason = re.sub(r"^URL fetch failure on \S+: (None -- )?", "", " ".join(str(exc).split()))
        raise WeightsUnavailableError(
            f"ImageNet weights {weights.fname} are not in the Keras cache and could not be "
            f"downloaded ({reason[:100] or type(exc).__name__}); download {weights.origin} "
            f"and place it in {folder}") from None
    return Path(got)


def load_weights_file(model, path, *, what: str = "weights") -> None:
    """``model.load_weights(path)`` with a one-line :class:`ModelError` when it does not fit."""
    try:
        model.load_weights(str(path))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise ModelError(f"cannot load {what} from {path} into {model.name}: "
                         f"{type(exc).__name__}: {msg}") from exc


# File signatures of the weights formats build_backbone accepts.
_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"


def check_weights_file(path: str | Path) -> Path:
    """A weights file that exists and is of the type its suffix says (``.h5`` /
    ``.weights.h5``: HDF5; ``.keras``: a zip; ``.pth``: a zip or a pickle), checked from its
    first bytes before anything is built or read; one :class:`ModelError` line otherwise."""
    path = Path(path)
    where = f"Received: weights={str(path)!r}"
    if not path.exists():
        raise ModelError(f"weights file not found: {path}. {where}")
    if not path.is_file():
        raise ModelError(f"weights must be a file, not a folder: {path}. {where}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelError(f"cannot read weights file {path} ({exc.strerror or exc}). "
                         f"{where}") from None
    name = path.name.lower()
    if name.endswith(".h5"):
        ok, kind = head.startswith(_HDF5), "an HDF5 (.h5) weights file"
    elif name.endswith(".keras"):
        ok, kind = head.startswith(_ZIP), "a .keras (zip) file"
    elif name.endswith(".pth"):
        ok, kind = head.startswith(_ZIP) or head[:1] == b"\x80", "a PyTorch (.pth) checkpoint"
    else:
        return path
    if not ok:
        raise ModelError(f"{path} is not {kind} (wrong type, or damaged). {where}")
    return path
