"""Drawing detections, track ids, counting lines and zones on BGR frames (OpenCV).

    >>> frame = draw_detections(frame, boxes, scores, classes, class_names=names,
    ...                         track_ids=ids)

Each class has its own colour (a fixed 20-colour palette, cycled), a tracked box takes the
colour of its track id instead, so that an object keeps its colour while it moves. Labels
(``#id name score``) are drawn on a filled box of the same colour, in black or white
text, whichever contrasts more, above the box or inside it at the top edge of the frame.
Line widths and text size scale with the frame size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# a qualitative palette (BGR) with neighbouring colours far apart
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
           (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
           (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
           (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255))


def color_for(index: int) -> tuple[int, int, int]:
    """The BGR colour of class (or track) ``index``."""
    return PALETTE[int(index) % len(PALETTE)]


def _text_color(bg) -> tuple[int, int, int]:
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _sizes(image: np.ndarray) -> tuple[int, float]:
    side = (image.shape[0] + image.shape[1]) / 2
    return max(2, int(round(side / 320))), max(0.4, side / 1400)


def draw_label(image: np.ndarray, text: str, x: int, y: int, color, *, font_scale=None,
               above: bool = True) -> None:
    """Draw ``text`` on a filled ``color`` box with its bottom-left corner at ``(x, y)``
    (or its top-left when the box would leave the frame), in place."""
    import cv2

    thickness, scale = _sizes(image)
    scale = font_scale or scale
    font_thick = max(1, thickness - 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, font_thick)
    h, w = image.shape[:2]
    pad = max(2, thickness)
    x = int(min(max(x, 0), max(0, w - tw - 2 * pad)))
    top = y - th - base - 2 * pad if above else y
    if top < 0:
        top = max(0, y) if above else 0
    top = int(min(top, max(0, h - th - base - 2 * pad)))
    cv2.rectangle(image, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), color, -1)
    cv2.putText(image, text, (x + pad, top + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale,
                _text_color(color), font_thick, cv2.LINE_AA)


def draw_detections(image_bgr: np.ndarray, boxes, scores=None, classes=None, *,
                    class_names: Sequence[str] | None = None, track_ids=None,
                    copy: bool = True) -> np.ndarray:
    """Draw xyxy ``boxes`` (source pixels) with labels ``#track name score``.

    Args:
        image_bgr: the frame, uint8 BGR.
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)`` or None.
        classes: ``(N,)`` class indices or None.
        class_names: names for the indices (default: the index).
        track_ids: ``(N,)`` ids (``-1`` or None: untracked) or None.
        copy: draw on a copy (default) or in place.
    """
    import cv2

    out = image_bgr.copy() if copy else image_bgr
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    thickness, _ = _sizes(out)
    labels = []
    for k in range(n):
        cls = int(classes[k]) if classes is not None else 0
        tid = int(track_ids[k]) if track_ids is not None and track_ids[k] is not None else -1
        color = color_for(tid if tid >= 0 else cls)
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[k])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        parts = []
        if tid >= 0:
            parts.append(f"#{tid}")
        if classes is not None:
            parts.append(class_names[cls] if class_names is not None and cls < len(class_names)
                         else str(cls))
        if scores is not None:
            parts.append(f"{float(scores[k]):.2f}")
        if parts:
            labels.append((float(scores[k]) if scores is not None else 0.0, k, " ".join(parts),
                           x1, y1, color))
    # labels after every box, best score last: on top where neighbours' labels overlap
    for _, _, text, x1, y1, color in sorted(labels):
        draw_label(out, text, x1, y1, color)
    return out


def draw_line(image_bgr: np.ndarray, line, counts: dict | None = None, *, color=(255, 255, 255),
              copy: bool = False) -> np.ndarray:
    """Draw a counting line ``(x1, y1, x2, y2)`` with ``counts`` (e.g. ``{"in": 3,
    "out": 1}``) next to its start."""
    import cv2

    out = image_bgr.copy() if copy else image_bgr
    thickness, _ = _sizes(out)
    x1, y1, x2, y2 = (int(round(v)) for v in line)
    cv2.line(out, (x1, y1), (x2, y2), color, thickness + 1, cv2.LINE_AA)
    if counts:
        draw_label(out, "  ".join(f"{k} {v}" for k, v in counts.items()), x1, y1, (40, 40, 40))
    return out


def draw_zone(image_bgr: np.ndarray, polygon, occupancy: int | None = None, *,
              color=(0, 200, 255), alpha: float = 0.25, copy: bool = False) -> np.ndarray:
    """Draw a polygon zone, filled with ``alpha``, with its occupancy."""
    import cv2

    out = image_bgr.copy() if copy else image_bgr
    pts = np.asarray(polygon, np.float32).reshape(-1, 2).round().astype(np.int32)
    overlay = out.copy()
    cv2.fillPoly(overlay, [pts], color)
    cv2.addWeighted(overlay, alpha, out, 1 - alpha, 0, dst=out)
    cv2.polylines(out, [pts], True, color, _sizes(out)[0], cv2.LINE_AA)
    if occupancy is not None:
        draw_label(out, f"in zone {occupancy}", int(pts[:, 0].min()), int(pts[:, 1].min()),
                   color)
    return out
