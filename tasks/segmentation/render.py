"""Drawing segmentation masks on frames: a coloured overlay and a legend."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from visionsuite.streams.sinks import Sink
from visionsuite_tasks.segmentation.readers import voc_palette

BACKGROUND_NAMES = ("background", "bg", "_background_", "unlabeled", "void")


def class_colors(classes: Sequence[str]) -> np.ndarray:
    """RGB colour of each class ``(C, 3)`` uint8: the Pascal VOC palette, except that class 1
    of a two-class model (e.g. background / person) is a bright green that stands out."""
    colors = voc_palette(max(len(classes), 1))[: len(classes)].copy()
    if len(classes) == 2:
        colors[1] = (0, 200, 80)
    return colors


def background_index(classes: Sequence[str]) -> int | None:
    """The class drawn transparent: one named like ``background``, else none."""
    for k, name in enumerate(classes):
        if str(name).lower() in BACKGROUND_NAMES:
            return k
    return None


_scratch = threading.local()  # per rendering thread: buffers reused across frames


def _buffer(name: str, shape: tuple) -> np.ndarray:
    """A uint8 scratch array of ``shape`` kept for the calling thread (reused frame after
    frame; never handed out)."""
    cache = _scratch.__dict__.setdefault("buffers", {})
    buf = cache.get(name)
    if buf is None or buf.shape != shape:
        buf = cache[name] = np.empty(shape, np.uint8)
    return buf


def color_lut(colors_rgb: np.ndarray) -> np.ndarray:
    """An OpenCV lookup table ``(256, 1, 3)`` uint8 mapping class id -> BGR colour."""
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[: len(colors_rgb), 0] = np.asarray(colors_rgb, np.uint8)[:, ::-1]  # RGB -> BGR
    return lut


def overlay(image_bgr: np.ndarray, mask: np.ndarray, colors_rgb: np.ndarray, *,
            alpha: float = 0.5, skip: int | None = None,
            labels: np.ndarray | None = None) -> np.ndarray:
    """Blend class colours over ``image_bgr`` where ``mask`` (uint8 class indices, same
    size) is not ``skip``; ``alpha`` is the colour's opacity. A new array is returned.

    All in uint8 with OpenCV: the class colours come from a lookup table, ``addWeighted``
    blends, and the blend is copied into the output only where a class is painted; the
    scratch images are reused across frames (no per-frame float arrays). ``labels``, when
    ``mask`` is its nearest-neighbour resize, is coloured instead and the colours resized
    the same way (the same image; a lookup over the small map instead of the frame)."""
    import cv2

    out = np.array(image_bgr, dtype=np.uint8, order="C", copy=True)
    if alpha <= 0:
        return out
    mask = np.ascontiguousarray(mask, np.uint8)
    shape = out.shape
    painted = _buffer("painted", shape)
    if labels is not None:
        labels = np.ascontiguousarray(labels, np.uint8)
        small = cv2.LUT(cv2.merge((labels, labels, labels)), color_lut(colors_rgb))
        cv2.resize(small, (shape[1], shape[0]), dst=painted, interpolation=cv2.INTER_NEAREST)
    else:
        mask3 = _buffer("mask3", shape)
        cv2.merge((mask, mask, mask), dst=mask3)
        cv2.LUT(mask3, color_lut(colors_rgb), dst=painted)
    blend = _buffer("blend", shape)
    cv2.addWeighted(out, 1.0 - alpha, painted, alpha, 0.0, dst=blend)
    if skip is None:
        out[...] = blend
    else:
        keep = _buffer("keep", shape[:2])
        cv2.compare(mask, int(skip), cv2.CMP_NE, dst=keep)
        cv2.copyTo(blend, keep, out)
    return out


_legends: dict = {}


def draw_legend(image_bgr: np.ndarray, names: Sequence[str], colors_rgb: np.ndarray,
                fractions: Sequence[float] | None = None) -> np.ndarray:
    """Draw a legend (colour swatch, name, area %) top-left on a filled box; in place. The
    legend is drawn once per distinct content and image height, then pasted."""
    if not len(names):
        return image_bgr
    labels = tuple(f"{n} {100 * f:.1f}%" if fractions is not None else str(n)
                   for n, f in zip(names, fractions if fractions is not None
                                   else [0] * len(names)))
    colors = tuple(tuple(int(v) for v in np.asarray(c)) for c in colors_rgb)
    key = (labels, colors, image_bgr.shape[0], image_bgr.shape[1])
    patch = _legends.get(key)
    if patch is None:
        patch = _draw_legend_patch(labels, colors, image_bgr.shape[0], image_bgr.shape[1])
        if len(_legends) > 64:
            _legends.clear()
        _legends[key] = patch
    (x0, y0), img = patch
    image_bgr[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return image_bgr


def _draw_legend_patch(labels, colors, h: int, w: int):
    """The legend box as ``((x0, y0), BGR image)`` for an image of ``h`` x ``w``."""
    import cv2

    scale = max(0.35, h / 900.0)
    thickness = max(1, int(round(scale * 2)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, scale, thickness)[0] for t in labels]
    pad = max(2, int(4 * scale))
    line_h = max(s[1] for s in sizes) + 2 * pad
    swatch = line_h - 2 * pad
    width = swatch + 3 * pad + max(s[0] for s in sizes)
    x0, y0 = 6, 6
    x1, y1 = min(x0 + width, w - 1), min(y0 + line_h * len(labels) + pad, h - 1)
    box = np.empty((max(0, y1 - y0 + 1), max(0, x1 - x0 + 1), 3), np.uint8)
    box[...] = (32, 32, 32)
    for k, (label, color) in enumerate(zip(labels, colors)):
        top = pad + k * line_h
        bgr = tuple(int(v) for v in color[::-1])
        cv2.rectangle(box, (pad, top), (pad + swatch, top + swatch), bgr, thickness=-1)
        cv2.putText(box, label, (2 * pad + swatch, top + swatch), font, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return (x0, y0), box


def write_palette_png(mask: np.ndarray, classes: Sequence[str], path) -> None:
    """Write ``mask`` (class indices) as a palette PNG: pixel value = class index, shown in
    the class colours by any viewer. Atomic."""
    from PIL import Image

    from visionsuite.files import atomic_path

    img = Image.fromarray(np.ascontiguousarray(mask, np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(classes)] = class_colors(classes)
    img.putpalette(palette.reshape(-1).tolist())
    with atomic_path(path, keep_suffix=True) as tmp:
        img.save(tmp, format="PNG")


class MaskSink(Sink):
    """Writes each predicted mask as a palette PNG into ``folder``: ``<source stem>.png`` for
    image files, ``<source stem>_<frame:06d>.png`` for video frames; adds the file to the
    result's record as ``"mask"``.

    Args:
        folder: the output folder (created).
    """

    needs_frame = False

    def __init__(self, folder):
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written = 0

    def write(self, result) -> None:
        from pathlib import Path

        if result.path:  # one image file
            stem = Path(result.path).stem
        else:
            stem = f"{Path(str(result.source)).stem or 'stream'}_{int(result.index):06d}"
        path = self.folder / f"{stem}.png"
        write_palette_png(result.prediction.mask, result.prediction.classes, path)
        result.record["mask"] = str(path)
        self.written += 1

    def close(self) -> None:
        pass
