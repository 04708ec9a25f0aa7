"""Metrics against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionsuite.errors import DataError
from visionsuite_tasks.medical import metrics


def test_dice_and_iou_of_shifted_cubes():
    ref = np.zeros((10, 10, 10), bool)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 2:6] = True  # 64 voxels
    pred[3:7, 2:6, 2:6] = True  # shifted by one along i: overlap 3 x 4 x 4 = 48
    assert metrics.dice(pred, ref) == pytest.approx(2 * 48 / 128)
    assert metrics.iou(pred, ref) == pytest.approx(48 / 80)
    labels_p = pred.astype(np.uint8) * 2
    labels_r = ref.astype(np.uint8) * 2
    d = metrics.dice_per_class(labels_p, labels_r, 3)
    assert math.isnan(d[1]) and d[2] == pytest.approx(0.75)
    assert d[0] == pytest.approx(2 * (1000 - 80) / (2 * 936))  # background: 936 each, 920 shared


def test_distances_use_the_spacing_in_mm():
    ref = np.zeros((3, 3, 5), bool)
    pred = np.zeros_like(ref)
    ref[0, 0, 0] = True
    pred[0, 0, 3] = True  # three steps along k, 2 mm each
    spacing = (1.0, 1.0, 2.0)
    assert metrics.hd95(pred, ref, spacing) == pytest.approx(6.0)
    assert metrics.average_surface_distance(pred, ref, spacing) == pytest.approx(6.0)
    pred[1, 0, 0] = True  # a second predicted voxel 1 mm from the reference
    a, b = metrics.surface_distances(pred, ref, spacing)
    assert sorted(a) == pytest.approx([1.0, 6.0]) and list(b) == pytest.approx([1.0])


def test_concentric_squares_by_hand():
    ref = np.zeros((10, 10), bool)
    pred = np.zeros_like(ref)
    ref[2:8, 2:8] = True  # ring of 20 surface pixels
    pred[3:7, 3:7] = True  # ring of 12 surface pixels, one pixel inside
    assert metrics.surface(ref).sum() == 20 and metrics.surface(pred).sum() == 12
    a, b = metrics.surface_distances(pred, ref)
    assert np.allclose(a, 1.0)  # every inner-ring pixel is 1 from the outer ring
    assert sorted(b) == pytest.approx([1.0] * 16 + [math.sqrt(2)] * 4)  # corners: diagonal
    assert metrics.hd95(pred, ref) == pytest.approx(math.sqrt(2))
    assert metrics.average_surface_distance(pred, ref) == pytest.approx(
        (12 + 16 + 4 * math.sqrt(2)) / 32)
    # Anisotropic pixels: 0.5 mm rows, 3 mm columns; inner ring is 0.5 mm (row neighbours)
    # or 3 mm (column neighbours) away, corners sqrt(0.25 + 9) from the nearest inner pixel.
    a, b = metrics.surface_distances(pred, ref, (0.5, 3.0))
    assert sorted(b) == pytest.approx(sorted([0.5] * 8 + [3.0] * 8 + [math.sqrt(9.25)] * 4))


def test_volumes_and_case_metrics():
    ref = np.zeros((4, 4, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[:2, :2, :2] = 1  # 8 voxels
    pred[:2, :2, :] = 1  # 16 voxels, 8 shared
    spacing = (1.0, 2.0, 2.5)  # 5 mm^3 a voxel
    assert metrics.volume_ml(ref, spacing) == pytest.approx(8 * 5 / 1000)
    m = metrics.case_metrics(pred, ref, spacing, ["background", "lesion"])
    assert list(m) == ["lesion"]
    lesion = m["lesion"]
    assert lesion["dice"] == pytest.approx(2 * 8 / 24)
    assert lesion["iou"] == pytest.approx(8 / 16)
    assert lesion["volume_diff_ml"] == pytest.approx(0.04)
    assert lesion["volume_diff_rel"] == pytest.approx(1.0)
    assert lesion["hd95_mm"] == pytest.approx(
        metrics.hd95(pred == 1, ref == 1, spacing)) and lesion["hd95_mm"] > 0


def test_empty_masks_and_bad_input():
    empty = np.zeros((5, 5, 5), bool)
    one = empty.copy()
    one[2, 2, 2] = True
    assert math.isnan(metrics.dice(empty, empty)) and metrics.dice(one, empty) == 0.0
    assert math.isnan(metrics.hd95(one, empty)) and math.isnan(metrics.hd95(empty, empty))
    assert metrics.hd95(one, one) == 0.0
    with pytest.raises(DataError, match="same shape"):
        metrics.dice(one, one[:4])
    with pytest.raises(DataError, match="spacing needs 3 positive"):
        metrics.hd95(one, one, spacing=(1.0, 1.0))
