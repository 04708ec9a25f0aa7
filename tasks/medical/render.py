"""Pictures of volumes: three orthogonal slices with a mask overlaid, as one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionsuite.errors import DataError
from visionsuite_tasks.medical.volume import Volume

# BGR colours of classes 1, 2, ... in overlays.
PALETTE = ((0, 0, 255), (0, 200, 0), (255, 128, 0), (0, 220, 220), (200, 0, 200), (255, 255, 0))


def orthogonal_slices(volume: Volume, mask: Volume | None = None, *, centre=None,
                      size: int = 256, alpha: float = 0.45,
                      window: tuple[float, float] | None = None) -> np.ndarray:
    """A BGR uint8 image: sagittal, coronal and axial slices side by side, mask overlaid.

    The volume is shown in RAS orientation (reoriented exactly, no interpolation), each panel
    with the patient's superior (sagittal, coronal) or anterior (axial) side up, left-right as
    seen from the front (radiological: patient's right on the image's left), and each pixel
    scaled to its physical aspect ratio.

    Args:
        mask: labels on the same grid (shape and affine), or None.
        centre: voxel (i, j, k) of the RAS volume where the slices cross; default: the mask's
            centre of mass, or the volume's centre.
        size: height in pixels of each panel.
        window: ``(low, high)`` display range; default: the 0.5-99.5 percentiles.
    """
    import cv2

    from visionsuite_tasks.medical.preprocess import to_canonical
    from visionsuite_tasks.medical.volume import check_label_matches

    if mask is not None:
        check_label_matches(volume, mask)
    vol = to_canonical(volume)
    lab = to_canonical(mask).array if mask is not None else None
    a = vol.array if vol.array.ndim == 3 else vol.array[..., 0]
    a = a.astype(np.float32)
    finite = a[np.isfinite(a)]
    lo, hi = window if window is not None else (
        np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
    grey = np.nan_to_num(np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1), nan=0.0)
    if centre is None:
        if lab is not None and lab.any():
            centre = np.round(np.argwhere(lab > 0).mean(axis=0)).astype(int)
        else:
            centre = np.asarray(a.shape) // 2
    i, j, k = (int(v) for v in centre)
    sx, sy, sz = vol.spacing
    # (2D array indexed [row, col], (col spacing, row spacing)); rows run from top to bottom.
    panels = [
        (grey[i, :, ::-1].T, None if lab is None else lab[i, :, ::-1].T, (sy, sz)),   # sagittal
        (grey[::-1, j, ::-1].T, None if lab is None else lab[::-1, j, ::-1].T, (sx, sz)),  # cor.
        (grey[::-1, ::-1, k].T, None if lab is None else lab[::-1, ::-1, k].T, (sx, sy)),  # axial
    ]
    out = []
    for img, lab2d, (col_sp, row_sp) in panels:
        h, w = img.shape
        width = max(1, int(round(size * (w * col_sp) / (h * row_sp))))
        g = cv2.resize((img * 255).astype(np.uint8), (width, size),
                       interpolation=cv2.INTER_LINEAR)
        bgr = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR).astype(np.float32)
        if lab2d is not None:
            lab_r = cv2.resize(lab2d.astype(np.uint8), (width, size),
                               interpolation=cv2.INTER_NEAREST)
            for c in range(1, int(lab_r.max()) + 1):
                sel = lab_r == c
                colour = np.asarray(PALETTE[(c - 1) % len(PALETTE)], np.float32)
                bgr[sel] = (1 - alpha) * bgr[sel] + alpha * colour
                edge = sel & ~cv2.erode(sel.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(
                    bool)
                bgr[edge] = colour
        out.append(bgr.astype(np.uint8))
        out.append(np.zeros((size, 4, 3), np.uint8))
    return np.hstack(out[:-1])


def save_orthogonal_png(path: str | Path, volume: Volume, mask: Volume | None = None,
                        **kwargs) -> Path:
    """Write :func:`orthogonal_slices` as a PNG (atomically)."""
    import cv2

    from visionsuite.files import write_bytes_atomic

    ok, data = cv2.imencode(".png", orthogonal_slices(volume, mask, **kwargs))
    if not ok:
        raise DataError(f"PNG encoding failed. Received: path={str(path)!r}")
    return write_bytes_atomic(path, data.tobytes())
