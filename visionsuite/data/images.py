"""Reading image files as RGB ``uint8`` arrays, and telling unreadable files apart early.

OpenCV's ``imread`` returns ``None`` for a file it cannot decode but *succeeds* on a truncated
JPEG (it fills the missing part with grey and prints a warning). :func:`check_image_file`
therefore looks at each file's signature and end marker (JPEG ``FFD9``, PNG ``IEND``, BMP
declared size) -- a few bytes read from each end, cheap enough to run over a whole dataset
when it is scanned -- and :func:`read_image` runs the same check before decoding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError

log = logging.getLogger("visionsuite.data")

# Suffixes (lower case) that are read as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_SIGNATURES = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "bmp": (b"BM",),
    "tiff": (b"II*\x00", b"MM\x00*"),
    "webp": (b"RIFF",),
}
_SUFFIX_KIND = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".tif": "tiff",
                ".tiff": "tiff", ".webp": "webp"}


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix (:data:`IMAGE_EXTENSIONS`)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _kind_of(head: bytes) -> str | None:
    for kind, sigs in _SIGNATURES.items():
        if any(head.startswith(s) for s in sigs):
            if kind == "webp" and head[8:12] != b"WEBP":
                continue
            return kind
    return None


def check_image_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an image, or ``None`` when it looks complete.

    Checks existence, size, the format signature and the end of the file (JPEG end-of-image
    marker, PNG ``IEND`` chunk, BMP and WebP declared sizes). It does not decode pixels:
    damage inside an otherwise complete file is found by :func:`read_image`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})"
    if not path.is_file():
        return "not a file"
    if size == 0:
        return "empty file"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    kind = _kind_of(head)
    if kind is None:
        return "not an image (unknown file signature)"
    expected = _SUFFIX_KIND.get(path.suffix.lower())
    if expected and expected != kind:
        log.debug("%s: a %s file with suffix %s", path, kind, path.suffix)
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "png" and b"IEND" not in tail[-64:]:
        return "truncated PNG (no IEND chunk)"
    if kind == "bmp" and len(head) >= 6 and int.from_bytes(head[2:6], "little") > size:
        return "truncated BMP (file shorter than its header says)"
    if kind == "webp" and int.from_bytes(head[4:8], "little") + 8 > size:
        return "truncated WebP (file shorter than its header says)"
    return None


def to_rgb(array: np.ndarray, source: str = "image", *, order: str = "BGR") -> np.ndarray:
    """Convert a decoded image to RGB ``uint8`` ``(H, W, 3)``.

    Accepts gray ``(H, W)`` / ``(H, W, 1)``, gray + alpha ``(H, W, 2)``, colour ``(H, W, 3)``
    and colour + alpha ``(H, W, 4)`` (alpha is dropped) in ``uint8``, ``uint16`` (scaled
    down) or float in ``[0, 1]`` or ``[0, 255]``. ``order`` is the channel order of colour
    input: ``"BGR"`` (OpenCV) or ``"RGB"``. Anything else raises :class:`DataError`.
    """
    import cv2

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] == 2:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or min(a.shape[:2]) < 1:
        raise DataError(f"{source}: expected a gray, RGB or RGBA image (H, W[, 1|2|3|4]). "
                        f"Received: shape={tuple(np.shape(array))}")
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    elif a.dtype.kind == "f":
        scale = 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a) * scale, 0, 255).round().astype(np.uint8)
    elif a.dtype != np.uint8:
        if a.dtype.kind not in "iub":
            raise DataError(f"{source}: unsupported pixel type. Received: dtype={a.dtype}")
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    if a.shape[-1] == 4:
        code = cv2.COLOR_BGRA2RGB if order == "BGR" else cv2.COLOR_RGBA2RGB
        return cv2.cvtColor(np.ascontiguousarray(a), code)
    if order == "BGR":
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(a)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``.

    Gray images become RGB and alpha is dropped (see :func:`to_rgb`). Missing, empty,
    truncated or undecodable files raise :class:`DataError` naming the file.
    """
    import cv2

    reason = check_image_file(path)
    if reason:
        raise DataError(f"cannot read image {path}: {reason}")
    data = np.fromfile(str(path), dtype=np.uint8)  # also handles non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"cannot read image {path}: OpenCV cannot decode it (corrupt file)")
    return to_rgb(image, str(path))


def list_images(folder: str | Path, *, recursive: bool = False, strict: bool = False,
                verify: bool = True) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files in ``folder`` (sorted), and the ones skipped with a reason.

    Args:
        folder: the folder to scan; a missing folder raises :class:`DataError`.
        recursive: also scan sub-folders.
        strict: raise :class:`DataError` at the first unreadable image instead of
            skipping it.
        verify: run :func:`check_image_file` on each file (cheap: a few bytes per file).

    Returns:
        ``(paths, skipped)`` where ``skipped`` lists ``(path, reason)``. Files without an
        image suffix are ignored silently (``.txt``, ``.DS_Store`` ...).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    if recursive:
        candidates = [Path(root) / name for root, _, names in os.walk(folder) for name in names]
    else:
        candidates = [p for p in folder.iterdir() if p.is_file()]
    paths, skipped = [], []
    for p in sorted(candidates):
        if not is_image_file(p) or p.name.startswith("."):
            continue
        reason = check_image_file(p) if verify else None
        if reason:
            if strict:
                raise DataError(f"cannot read image {p}: {reason} (strict mode; without it the "
                                f"file is skipped)")
            skipped.append((str(p), reason))
        else:
            paths.append(p)
    return paths, skipped


def warn_skipped(skipped: Iterable[tuple[str, str]], what: str = "dataset") -> None:
    """Log one warning with the count of skipped items and the first few reasons."""
    skipped = list(skipped)
    if not skipped:
        return
    shown = "; ".join(f"{item}: {reason}" for item, reason in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    log.warning("%s: skipped %d unreadable item(s): %s%s", what, len(skipped), shown, more)
