"""Segmentation metrics for volumes, in millimetres where distances are involved.

Definitions (2D and 3D arrays alike; ``spacing`` is mm per voxel step along each axis):

* Dice ``2|A∩B| / (|A| + |B|)`` and IoU ``|A∩B| / |A∪B|`` per class.
* Surface voxels of a mask: voxels of the mask with at least one face-neighbour outside it
  (``mask & ~binary_erosion(mask)``, voxels on the array border count as surface).
* Directed surface distances A→B: for each surface voxel of A, the Euclidean distance in mm
  to the nearest surface voxel of B (``scipy.ndimage.distance_transform_edt`` with
  ``sampling=spacing``).
* HD95: the larger of the two directed 95th percentiles (A→B and B→A).
* ASD (average symmetric surface distance): the mean of all directed distances of both
  directions pooled together.
* Volume in millilitres (voxel count x voxel volume), and the difference prediction minus
  reference (ml and relative to the reference).

Empty masks: when both prediction and reference are empty, Dice/IoU/HD95/ASD are NaN
(undefined; excluded by ``nanmean`` when averaging over cases); when only one is empty, Dice
and IoU are 0 and the distances NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionsuite.errors import DataError


def _check(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise DataError(f"prediction and reference must have the same shape. Received: "
                        f"{pred.shape} and {ref.shape}")
    return pred, ref


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    spacing = (1.0,) * ndim if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != ndim or min(spacing) <= 0:
        raise DataError(f"spacing needs {ndim} positive values (mm per voxel). "
                        f"Received: spacing={spacing}")
    return spacing


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two binary masks (NaN when both are empty)."""
    pred, ref = _check(pred, ref)
    p, r = pred.astype(bool), ref.astype(bool)
    total = int(p.sum()) + int(r.sum())
    return float("nan") if total == 0 else 2.0 * int(np.logical_and(p, r).sum()) / total


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union of two binary masks (NaN when both are empty)."""
    pred, ref = _check(pred, ref)
    p, r = pred.astype(bool), ref.astype(bool)
    union = int(np.logical_or(p, r).sum())
    return float("nan") if union == 0 else int(np.logical_and(p, r).sum()) / union


def dice_per_class(pred_labels: np.ndarray, ref_labels: np.ndarray,
                   num_classes: int) -> np.ndarray:
    """Dice of every class ``0..num_classes-1`` of two label maps, shape ``(num_classes,)``."""
    pred, ref = _check(pred_labels, ref_labels)
    return np.array([dice(pred == c, ref == c) for c in range(num_classes)])


def surface(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a binary mask (face connectivity)."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred→ref, ref→pred); empty if a mask is empty."""
    from scipy import ndimage

    pred, ref = _check(pred, ref)
    spacing = _spacing(spacing, pred.ndim)
    sp, sr = surface(pred), surface(ref)
    if not sp.any() or not sr.any():
        return np.zeros(0), np.zeros(0)
    to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_ref[sp], to_pred[sr]


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None,
         percentile: float = 95.0) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (NaN if either mask is empty)."""
    a, b = surface_distances(pred, ref, spacing)
    if a.size == 0:
        return float("nan")
    return float(max(np.percentile(a, percentile), np.percentile(b, percentile)))


def average_surface_distance(pred: np.ndarray, ref: np.ndarray,
                             spacing: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance in mm (NaN if either mask is empty)."""
    a, b = surface_distances(pred, ref, spacing)
    if a.size == 0:
        return float("nan")
    return float(np.concatenate([a, b]).mean())


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a binary mask in millilitres."""
    mask = np.asarray(mask)
    return float(mask.astype(bool).sum()) * float(np.prod(_spacing(spacing, mask.ndim))) / 1000.0


def case_metrics(pred_labels: np.ndarray, ref_labels: np.ndarray,
                 spacing: Sequence[float], classes: Sequence[str],
                 *, include_background: bool = False) -> dict[str, dict[str, float]]:
    """Every metric for every class of one case: ``{class: {dice, iou, hd95_mm, asd_mm,
    volume_pred_ml, volume_ref_ml, volume_diff_ml, volume_diff_rel}}``.

    Class 0 (background) is skipped unless ``include_background``.
    """
    pred, ref = _check(pred_labels, ref_labels)
    spacing = _spacing(spacing, pred.ndim)
    out = {}
    for c, name in enumerate(classes):
        if c == 0 and not include_background:
            continue
        p, r = pred == c, ref == c
        a, b = surface_distances(p, r, spacing)
        vp, vr = volume_ml(p, spacing), volume_ml(r, spacing)
        out[name] = {
            "dice": dice(p, r),
            "iou": iou(p, r),
            "hd95_mm": float(max(np.percentile(a, 95), np.percentile(b, 95))) if a.size
            else float("nan"),
            "asd_mm": float(np.concatenate([a, b]).mean()) if a.size else float("nan"),
            "volume_pred_ml": vp,
            "volume_ref_ml": vr,
            "volume_diff_ml": vp - vr,
            "volume_diff_rel": (vp - vr) / vr if vr > 0 else float("nan"),
        }
    return out
