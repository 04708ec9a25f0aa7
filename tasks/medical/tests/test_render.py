"""Orthogonal-slice overlays: orientation of the panels and the mask drawn where it is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError
from visionsuite_tasks.medical import readers, render
from visionsuite_tasks.medical.preprocess import reorient


def test_overlay_panels_are_oriented_and_mask_is_drawn(tmp_path, nibabel_data):
    vol = readers.read_nifti(nibabel_data("anatomical.nii"))  # LAS
    mask = vol.with_array(np.zeros(vol.shape, np.uint8))
    # a marker in the patient's right, anterior, superior corner region (RAS voxel max side)
    ras = reorient(mask, "RAS")
    ras.array[-6:, -6:, -6:] = 1
    mask = reorient(ras, vol.orientation)
    img = render.orthogonal_slices(vol, mask, size=100, alpha=1.0,
                                   centre=(ras.shape[0] - 3, ras.shape[1] - 3, ras.shape[2] - 3))
    assert img.shape[0] == 100 and img.dtype == np.uint8
    red = (img[..., 2] == 255) & (img[..., 0] == 0) & (img[..., 1] == 0)
    widths = [int(round(100 * a * 2 / (b * 2))) for a, b in
              [(41, 25), (33, 25), (33, 41)]]  # sagittal (A x S), coronal (R x S), axial (R x A)
    x0 = 0
    panels = []
    for w in widths:
        panels.append(red[:, x0:x0 + w])
        x0 += w + 4
    sag, cor, axi = panels
    assert sag[:30, -30:].any() and not sag[60:, :].any()  # superior (top), anterior (right)
    assert cor[:30, :30].any() and not cor[:, 60:].any()   # superior, patient's right on the left
    assert axi[:30, :30].any() and not axi[60:, :].any()   # anterior (top), right on the left
    out = render.save_orthogonal_png(tmp_path / "o.png", vol, mask)
    assert cv2.imread(str(out)).shape[2] == 3


def test_nan_voxels_and_mismatched_masks(nibabel_data):
    vol = readers.read_nifti(nibabel_data("anatomical.nii"))
    vol = vol.with_array(vol.array.astype(np.float32))
    vol.array[:5] = np.nan  # resampled images often carry NaN outside the field of view
    with np.errstate(invalid="raise"):
        img = render.orthogonal_slices(vol)
    assert img.max() > 0
    with pytest.raises(DataError, match="has shape"):
        render.orthogonal_slices(vol, vol.with_array(np.zeros((2, 2, 2), np.uint8)))
