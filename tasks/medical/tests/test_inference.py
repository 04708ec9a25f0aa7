"""Sliding-window inference: exact stitching (no seams), order checks, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical.inference import (
    SlidingWindow,
    gaussian_importance,
    largest_component,
    predict_volume,
    peak_memory_bytes,
    sliding_window_inference,
)


def _position_field(shape):
    """A smooth, position-unique field in (0, 1): what the model below reproduces per voxel."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    return (0.1 + 0.8 * (0.5 + 0.25 * np.sin(z / 7.0) + 0.15 * np.cos(y / 5.0)
                         + 0.1 * np.sin(x / 3.0 + 1.0)) / 1.0).astype(np.float32) * 0.9


def _two_class_model(batch):
    """Per-voxel 'probabilities' [1 - v, v] of the input v: tiles see only their own voxels."""
    v = batch[..., :1]
    return np.concatenate([1.0 - v, v], axis=-1)


@pytest.mark.parametrize("shape, window, overlap", [
    ((40, 37, 29), (16, 16, 16), 0.5),
    ((23, 50, 11), (16, 20, 16), 0.25),   # depth and width smaller/odd: padding paths
    ((10, 10, 10), (16, 16, 16), 0.5),    # the whole volume is smaller than one window
])
def test_stitched_probabilities_reproduce_a_known_field_exactly(shape, window, overlap):
    field = _position_field(shape)
    sw = SlidingWindow(window, overlap=overlap)
    probs = sliding_window_inference(field, _two_class_model, sw, 2, batch_size=3,
                                     output="probabilities")
    assert probs.shape == shape + (2,) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[..., 1], field, atol=2e-6, rtol=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=2e-6)
    labels = sliding_window_inference(field, _two_class_model, sw, 2)
    np.testing.assert_array_equal(labels, (field > 0.5).astype(np.uint8))


def test_seams_would_show_if_weights_were_wrong():
    """A model whose output depends on the tile (not only the voxel) gives a non-flat result;
    the same stitcher reproduces the field only because the per-voxel weights are normalised."""
    shape = (48, 48, 48)
    ones = np.ones(shape, np.float32)
    sw = SlidingWindow((16, 16, 16), overlap=0.5)
    g = sw.importance

    def weighted_model(batch):  # returns the importance map itself as 'probability'
        return np.repeat(g[None, ..., None], batch.shape[0], axis=0)

    out = sliding_window_inference(ones, weighted_model, sw, 1, output="probabilities")[..., 0]
    assert out.std() > 0.01  # tile-dependent outputs do show the tiling ...
    flat = sliding_window_inference(ones * 0.7, lambda b: b, sw, 1, output="probabilities")
    np.testing.assert_allclose(flat, 0.7, atol=1e-6)  # ... and a per-voxel model does not


def test_test_time_flips_are_undone():
    field = _position_field((30, 30, 30))
    sw = SlidingWindow((16, 16, 16), overlap=0.5, flips=[(0,), (1, 2)])
    assert len(sw.positions(field.shape)) == 3 * len(SlidingWindow((16,) * 3).positions(
        field.shape))
    probs = sliding_window_inference(field, _two_class_model, sw, 2, output="probabilities")
    np.testing.assert_allclose(probs[..., 1], field, atol=2e-6)


def test_single_sigmoid_channel_and_float16_accumulators():
    field = _position_field((33, 33, 33))
    sw = SlidingWindow((16, 16, 16), overlap=0.5)
    mask = sliding_window_inference(field, lambda b: b, sw, 1, accumulate="float16")
    agree = np.mean(mask == (field > 0.5))
    assert mask.dtype == np.uint8 and agree > 0.999  # float16 sums round only at the boundary
    probs = sliding_window_inference(field, lambda b: b, sw, 1, output="probabilities",
                                     accumulate="float16")
    np.testing.assert_allclose(probs[..., 0], field, atol=6e-3)  # float16: ~0.5 % relative


def test_generator_and_stitcher_as_a_stream_state_uses_them():
    field = _position_field((20, 24, 28))
    sw = SlidingWindow((16, 16, 16), overlap=0.5)
    stitcher = sw.stitcher(field.shape, 2, output="probabilities")
    pending = list(sw.tiles(field))
    assert [t.index for _, t in pending] == list(range(len(stitcher.tiles)))
    starts = [t.start[0] for _, t in pending]
    assert starts == sorted(starts)  # z-major: what lets the stitcher free finished slices
    with pytest.raises(UsageError, match="pushed in the order"):
        stitcher.push(pending[1][1], _two_class_model(pending[1][0][None])[0])
    with pytest.raises(DataError, match="must be"):
        stitcher.push(pending[0][1], np.zeros((8, 8, 8, 2)))
    with pytest.raises(UsageError, match="still missing"):
        stitcher.result()
    for tile_input, tile in pending:
        assert not stitcher.done
        stitcher.push(tile, _two_class_model(tile_input[None]))  # batch axis of 1 accepted
    assert stitcher.done
    np.testing.assert_allclose(stitcher.result()[..., 1], field, atol=2e-6)
    with pytest.raises(UsageError, match="already pushed"):
        stitcher.push(pending[0][1], _two_class_model(pending[0][0]))


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(UsageError, match="overlap must be in"):
        SlidingWindow((8, 8, 8), overlap=1.0)
    with pytest.raises(UsageError, match="three positive sizes"):
        SlidingWindow((8, 8))
    with pytest.raises(DataError, match=r"\(D, H, W\[, C\]\) volume"):
        next(SlidingWindow((8, 8, 8)).tiles(np.zeros((4, 4))))
    with pytest.raises(UsageError, match="output must be"):
        SlidingWindow((8, 8, 8)).stitcher((8, 8, 8), 2, output="logits")


def test_importance_map_is_centred_and_floored():
    g = gaussian_importance((9, 9, 9), 0.125, 1e-3)
    assert g[4, 4, 4] == 1.0 and g.min() == pytest.approx(1e-3)
    assert np.unravel_index(np.argmax(g), g.shape) == (4, 4, 4)


def test_memory_for_a_256_cubed_volume_stays_bounded():
    """Peak Python/numpy allocations while stitching 256^3 with 4 classes stay below the
    documented estimate, itself far below one float32 C x D x H x W buffer (256 MiB)."""
    shape, classes = (256, 256, 256), 4
    volume = np.zeros(shape, np.float32)  # allocated before measuring: the caller's input
    sw = SlidingWindow((64, 64, 64), overlap=0.25)

    def model(batch):
        return np.broadcast_to(np.float32(0.25), batch.shape[:4] + (classes,))

    estimate = peak_memory_bytes(shape, sw.window, classes, accumulate="float16")
    full = classes * np.prod(shape) * 4
    tracemalloc.start()
    try:
        labels = sliding_window_inference(volume, model, sw, classes, accumulate="float16")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert labels.shape == shape and labels.dtype == np.uint8
    print(f"256^3, 4 classes, 64^3 windows: peak {peak / 2**20:.1f} MiB, estimate "
          f"{estimate / 2**20:.1f} MiB, one float32 CxDxHxW buffer {full / 2**20:.0f} MiB")
    assert peak <= estimate * 1.1
    assert estimate < full / 3


def test_largest_component_keeps_one_blob_per_class():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 1  # 216 voxels
    labels[12:14, 12:14, 12:14] = 1  # 8 voxels, separate
    labels[15:18, 2:5, 2:5] = 2
    labels[8, 8, 8] = 1  # touches the big blob diagonally: 26-connected, kept
    out = largest_component(labels)
    assert out[13, 13, 13] == 0 and out[8, 8, 8] == 1 and out[3, 3, 3] == 1
    assert (out == 2).sum() == 27 and (out == 1).sum() == 217


def test_predict_volume_maps_labels_back_onto_the_input_grid(nibabel_data):
    """A per-voxel 'model' (threshold) through reorientation (LAS -> RAS) and resampling
    (2 mm -> 1.5 mm) gives labels with exactly the input's shape and affine."""
    from visionsuite_tasks.medical import metrics, readers

    vol = readers.read_nifti(nibabel_data("anatomical.nii"))  # real T1, LAS, 2 mm
    level = float(np.percentile(vol.array, 60))

    def threshold(batch):  # (N, d, h, w, 1) -> two-class probabilities
        fg = (batch[..., :1] > level).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=-1)

    sw = SlidingWindow((16, 16, 16), overlap=0.5)
    exact = predict_volume(vol, threshold, sw, 2)  # reorientation only: no interpolation
    assert exact.shape == vol.shape and np.array_equal(exact.affine, vol.affine)
    np.testing.assert_array_equal(exact.array, (vol.array > level).astype(np.uint8))
    resampled = predict_volume(vol, threshold, sw, 2, spacing=(1.5, 1.5, 1.5))
    assert resampled.shape == vol.shape and np.array_equal(resampled.affine, vol.affine)
    assert metrics.dice(resampled.array == 1, vol.array > level) > 0.9
