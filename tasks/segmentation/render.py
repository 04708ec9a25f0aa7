"""Drawing segmentation masks on frames: a coloured overlay and a legend."""

from __future__ import annotations

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


def overlay(image_bgr: np.ndarray, mask: np.ndarray, colors_rgb: np.ndarray, *,
            alpha: float = 0.5, skip: int | None = None) -> np.ndarray:
    """Blend class colours over ``image_bgr`` where ``mask`` (class indices, same size)
    is not ``skip``; ``alpha`` is the colour's opacity."""
    out = np.ascontiguousarray(image_bgr).copy()
    if alpha <= 0:
        return out
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(colors_rgb)] = np.asarray(colors_rgb, np.uint8)[:, ::-1]  # RGB -> BGR
    painted = lut[mask]
    keep = np.ones(mask.shape, bool) if skip is None else mask != skip
    if keep.any():
        blend = (out[keep].astype(np.float32) * (1.0 - alpha)
                 + painted[keep].astype(np.float32) * alpha)
        out[keep] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_legend(image_bgr: np.ndarray, names: Sequence[str], colors_rgb: np.ndarray,
                fractions: Sequence[float] | None = None) -> np.ndarray:
    """Draw a legend (colour swatch, name, area %) top-left on a filled box; in place."""
    import cv2

    out = image_bgr
    if not len(names):
        return out
    h = out.shape[0]
    scale = max(0.35, h / 900.0)
    thickness = max(1, int(round(scale * 2)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    labels = [f"{n} {100 * f:.1f}%" if fractions is not None else str(n)
              for n, f in zip(names, fractions if fractions is not None else [0] * len(names))]
    sizes = [cv2.getTextSize(t, font, scale, thickness)[0] for t in labels]
    pad = max(2, int(4 * scale))
    line_h = max(s[1] for s in sizes) + 2 * pad
    swatch = line_h - 2 * pad
    width = swatch + 3 * pad + max(s[0] for s in sizes)
    x0, y0 = 6, 6
    x1, y1 = min(x0 + width, out.shape[1] - 1), min(y0 + line_h * len(labels) + pad, h - 1)
    cv2.rectangle(out, (x0, y0), (x1, y1), (32, 32, 32), thickness=-1)
    for k, (label, color) in enumerate(zip(labels, colors_rgb)):
        top = y0 + pad + k * line_h
        bgr = tuple(int(v) for v in np.asarray(color)[::-1])
        cv2.rectangle(out, (x0 + pad, top), (x0 + pad + swatch, top + swatch), bgr, thickness=-1)
        cv2.putText(out, label, (x0 + 2 * pad + swatch, top + swatch), font, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return out


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
