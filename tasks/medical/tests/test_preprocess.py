"""Preprocessing: exact reorientation and grids, windows, normalisation, crops, patches,
augmentation that keeps image and labels aligned."""

from __future__ import annotations

import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical import preprocess as P
from visionsuite_tasks.medical import readers
from visionsuite_tasks.medical.volume import Volume


def _ramp_volume(shape=(20, 24, 16), affine=None):
    """Values linear in world coordinates: any correct linear resampling reproduces them."""
    affine = np.array([[-1.5, 0, 0.2, 30], [0, 1.2, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]]) \
        if affine is None else affine
    vol = Volume(np.zeros(shape, np.float32), affine)
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    xyz = vol.world(ijk)
    vol.array = (0.5 * xyz[..., 0] - 0.25 * xyz[..., 1] + 0.1 * xyz[..., 2]).astype(np.float32)
    return vol, lambda w: 0.5 * w[..., 0] - 0.25 * w[..., 1] + 0.1 * w[..., 2]


@pytest.mark.parametrize("source", ["nifti", "dicom"])
def test_reorient_to_canonical_and_back_is_exact(source, nibabel_data, make_series):
    if source == "nifti":
        vol = readers.read_nifti(nibabel_data("example4d.nii.gz"))  # LAS, sheared, 2 channels
    else:
        folder, _ = make_series(5, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
        vol = readers.read_dicom(folder)  # sagittal: PIR
    ras = P.to_canonical(vol)
    assert ras.orientation == "RAS" and ras.orientation != vol.orientation
    # every voxel keeps its world position: compare a voxel's value through world space
    ijk = np.array([3, 2, 1])
    back_ijk = np.linalg.solve(ras.affine, np.append(vol.world(ijk), 1))[:3]
    np.testing.assert_allclose(back_ijk, np.round(back_ijk), atol=1e-9)
    assert np.array_equal(ras.array[tuple(np.round(back_ijk).astype(int))], vol.array[tuple(ijk)])
    again = P.reorient(ras, vol.orientation)
    np.testing.assert_array_equal(again.array, vol.array)
    np.testing.assert_allclose(again.affine, vol.affine, atol=1e-12, rtol=0)
    with pytest.raises(UsageError, match="axcodes must name three different axes"):
        P.reorient(vol, "RRS")


def test_resample_to_spacing_keeps_origin_and_interpolates_linearly():
    vol, f = _ramp_volume()
    out = P.resample_to_spacing(vol, (1.0, 1.0, 1.0))
    assert out.shape == (30, 29, 40) and out.spacing == pytest.approx((1.0, 1.0, 1.0))
    np.testing.assert_allclose(out.origin, vol.origin)
    np.testing.assert_allclose(out.direction, vol.direction, atol=1e-12)
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in out.shape), indexing="ij"), -1)
    inside = np.all(ijk * np.asarray(out.spacing) <= (np.asarray(vol.shape) - 1)
                    * np.asarray(vol.spacing), axis=-1)
    np.testing.assert_allclose(out.array[inside], f(out.world(ijk))[inside], atol=1e-3)


def test_labels_resample_with_nearest_and_keep_their_values():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[3:9, 3:9, 3:9] = 2
    labels[5:7, 5:7, 5:7] = 7
    vol = Volume(labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    out = P.resample_to_spacing(vol, (0.7, 1.3, 3.0))
    assert out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 2, 7}


def test_resample_to_model_grid_and_back_restores_input_geometry():
    vol, f = _ramp_volume()
    small = P.resample_to_shape(P.to_canonical(vol), (16, 16, 16))
    assert small.shape == (16, 16, 16)
    # The field of view is kept: the outer voxel faces coincide.
    lo = vol.world(np.array([-0.5, -0.5, -0.5]))
    hi = vol.world(np.asarray(vol.shape) - 0.5)
    corners = {tuple(np.round(small.world(np.array(c) * (np.asarray(small.shape)) - 0.5), 6))
               for c in np.ndindex(2, 2, 2)}
    assert tuple(np.round(lo, 6)) in corners and tuple(np.round(hi, 6)) in corners
    back = P.resample_like(small, vol)
    assert back.shape == vol.shape
    np.testing.assert_array_equal(back.affine, vol.affine)
    interior = (slice(3, -3),) * 3
    np.testing.assert_allclose(back.array[interior], vol.array[interior], atol=1e-3)


def test_window_presets_map_level_and_width():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    np.testing.assert_allclose(P.window(hu, "brain"), [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(P.window(np.array([-600.0]), "lung"), [0.5])
    np.testing.assert_allclose(P.window(np.array([400.0, -500.0]), "bone"), [0.5, 0.0])
    assert set(P.WINDOW_PRESETS) >= {"brain", "subdural", "lung", "mediastinum", "abdomen",
                                     "bone"}
    with pytest.raises(UsageError, match="unknown window 'lungs'. Did you mean: lung"):
        P.window(hu, "lungs")


def test_mr_normalisations():
    rng = np.random.default_rng(0)
    a = rng.normal(100.0, 20.0, (20, 20, 20)).astype(np.float32)
    z = P.zscore(a)
    assert abs(float(z.mean())) < 1e-4 and float(z.std()) == pytest.approx(1.0, abs=1e-4)
    mask = np.zeros(a.shape, bool)
    mask[5:15] = True
    zm = P.zscore(a, mask)
    assert float(zm[mask].mean()) == pytest.approx(0.0, abs=1e-4)
    p = P.normalize_percentile(a, 1, 99)
    assert p.min() == 0.0 and p.max() == 1.0
    assert np.mean(p == 0.0) == pytest.approx(0.01, abs=0.002)
    with pytest.raises(DataError, match="mask is empty"):
        P.zscore(a, np.zeros(a.shape, bool))


def test_crop_to_foreground_keeps_world_positions_and_pastes_back():
    vol, _ = _ramp_volume()
    vol.array[:] = 0
    vol.array[5:9, 6:15, 2:4] = 3.0
    cropped, box = P.crop_to_foreground(vol, margin=1)
    assert cropped.shape == (6, 11, 4) and box.start == (4, 5, 1)
    np.testing.assert_allclose(cropped.world([0, 0, 0]), vol.world([4, 5, 1]))
    np.testing.assert_array_equal(box.paste(cropped.array), vol.array)
    with pytest.raises(DataError, match="nothing is above the threshold"):
        P.crop_to_foreground(vol, threshold=10)


def test_patch_sampling_honours_the_positive_ratio():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 40, 40)).astype(np.float32)
    label = np.zeros((40, 40, 40), np.uint8)
    label[30:33, 5:8, 20:22] = 1  # a small lesion: random patches rarely hit it
    imgs, labs, pos = P.sample_patches(image, label, (16, 16, 16), 20, positive_fraction=0.3,
                                       rng=rng)
    assert imgs.shape == (20, 16, 16, 16, 1) and labs.shape == (20, 16, 16, 16)
    assert pos.sum() == 6
    assert all(labs[k].any() for k in np.flatnonzero(pos))
    # a volume smaller than the patch is padded
    imgs, labs, _ = P.sample_patches(image[:10], label[:10], (16, 16, 16), 2, rng=rng)
    assert imgs.shape == (2, 16, 16, 16, 1)


@pytest.mark.parametrize("symmetry", ["flips", "cubic"])
def test_augmentation_keeps_image_and_labels_aligned(symmetry):
    rng = np.random.default_rng(1)
    label = np.zeros((24, 24, 24), np.uint8)
    label[2:10, 4:20, 6:9] = 1
    label[15:22, 15:22, 15:22] = 2
    image = label.astype(np.float32)[..., None]
    aug = P.Augment3D(symmetry=symmetry, affine_p=0.0, intensity_p=0.0, gamma_p=0.0,
                                noise_p=0.0, seed=3)
    changed = 0
    for _ in range(6):
        img, lab = aug(image, label)
        np.testing.assert_array_equal(img[..., 0], lab.astype(np.float32))  # exact: no resampling
        assert np.bincount(lab.ravel(), minlength=3).tolist() == np.bincount(
            label.ravel(), minlength=3).tolist()
        changed += not np.array_equal(lab, label)
    assert changed >= 3
    del rng
    # small affine: labels (nearest) and image (linear) still agree almost everywhere
    aug = P.Augment3D(symmetry=None, affine_p=1.0, rotate_deg=10, intensity_p=0.0, gamma_p=0.0,
                      noise_p=0.0, seed=0)
    img, lab = aug(image, label)
    assert not np.array_equal(lab, label)
    assert np.mean(np.round(img[..., 0]) == lab) > 0.97


def test_intensity_augmentation_changes_only_the_image():
    image = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    label = (image > 1).astype(np.uint8)
    aug = P.Augment3D(symmetry=None, affine_p=0.0, intensity_p=1.0, gamma_p=1.0, noise_p=1.0,
                      seed=0)
    img, lab = aug(image, label)
    assert img.shape == image.shape and img.dtype == np.float32 and not np.allclose(img, image)
    np.testing.assert_array_equal(lab, label)
    with pytest.raises(DataError, match="needs a cubic patch"):
        P.Augment3D(symmetry="cubic")(np.zeros((8, 8, 4)), np.zeros((8, 8, 4), np.uint8))
