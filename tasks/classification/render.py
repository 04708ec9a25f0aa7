"""Drawing classification results on video frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def draw_text_lines(image_bgr: np.ndarray, lines: Sequence[str], *, origin=(8, 8),
                    color=(255, 255, 255), background=(32, 32, 32)) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``lines`` written top-left on a filled box.

    The font scales with the frame height, so labels stay readable from 64 px thumbnails to
    4K frames; the box keeps them readable on any background.
    """
    import cv2

    out = np.ascontiguousarray(image_bgr).copy()
    if not lines:
        return out
    h = out.shape[0]
    scale = max(0.35, h / 800.0)
    thickness = max(1, int(round(scale * 2)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, scale, thickness) for t in lines]
    pad = max(2, int(4 * scale))
    base = max(s[1] for s in sizes)  # one baseline offset for all lines: even spacing
    line_h = max(s[0][1] for s in sizes) + base + pad
    width = max(s[0][0] for s in sizes) + 2 * pad
    x0, y0 = origin
    x1, y1 = x0 + width, y0 + line_h * len(lines) + pad
    cv2.rectangle(out, (x0, y0), (min(x1, out.shape[1] - 1), min(y1, h - 1)), background,
                  thickness=-1)
    for k, text in enumerate(lines):
        y = y0 + pad + line_h * (k + 1) - base - pad // 2
        cv2.putText(out, text, (x0 + pad, y), font, scale, color, thickness, cv2.LINE_AA)
    return out
