"""Readers and the NIfTI writer on real files (pydicom, nibabel test data) and synthetic series."""

from __future__ import annotations

import shutil

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical import readers
from visionsuite_tasks.medical.synthetic import write_dicom_slice as write_slice
from visionsuite_tasks.medical.volume import LPS_TO_RAS, Volume, check_label_matches


def _lps_world(ds, row, col):
    """World LPS position of pixel (row, col) of a classic DICOM slice (the standard's formula)."""
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return ipp + iop[:3] * dc * col + iop[3:] * dr * row


# ------------------------------------------------------------------ real DICOM
def test_ct_small_hu_and_geometry_match_pydicom(pydicom_data):
    path = pydicom_data("CT_small.dcm")
    ds = pydicom.dcmread(path)
    vol = readers.read_volume(path)
    assert vol.shape == (128, 128, 1) and vol.modality == "CT" and vol.patient_id == ds.PatientID
    hu = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(vol.array[:, :, 0], hu.T)  # [i=col, j=row]
    assert float(ds.RescaleIntercept) == -1024 and vol.array.min() < 0  # really HU
    for row, col in [(0, 0), (127, 0), (5, 100), (127, 127)]:
        ras = LPS_TO_RAS[:3, :3] @ _lps_world(ds, row, col)
        np.testing.assert_allclose(vol.world([col, row, 0]), ras, atol=1e-9)


def test_real_series_is_sorted_by_position_not_instance_number(pydicom_series):
    folder = pydicom_series("98892001/CT5N")
    files = sorted(folder.iterdir())
    dss = [pydicom.dcmread(f) for f in files]
    vol = readers.read_dicom(folder)
    assert vol.shape == (16, 16, 5)
    by_z = sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))
    by_instance = sorted(dss, key=lambda d: int(d.InstanceNumber))
    assert [d.SOPInstanceUID for d in by_z] != [d.SOPInstanceUID for d in by_instance]
    for k, ds in enumerate(by_z):
        np.testing.assert_array_equal(vol.array[:, :, k], apply_modality_lut(ds.pixel_array, ds).T)
        np.testing.assert_allclose(vol.world([3, 7, k]),
                                   LPS_TO_RAS[:3, :3] @ _lps_world(ds, 7, 3), atol=1e-6)
    assert vol.spacing == pytest.approx((0.488281, 0.488281, 2.5), abs=1e-6)


def test_real_folder_with_a_gap_is_refused(pydicom_series):
    with pytest.raises(DataError, match=r"a gap: 161 missing slice\(s\)") as err:
        readers.read_dicom(pydicom_series("77654033/CT2"))
    assert "\n" not in str(err.value) and "Received:" in str(err.value)


def test_real_folder_with_several_series_lists_them(pydicom_series):
    folder = pydicom_series("98892003/MR2")
    with pytest.raises(DataError, match="holds 3 DICOM series") as err:
        readers.read_dicom(folder)
    msg = str(err.value)
    for info in readers.list_dicom_series(folder):
        assert f"{info.uid} ({len(info.files)} files" in msg
    assert "3 files" in msg and "1 files" in msg and "series_uid=" in msg
    # Choosing the localizer (one file) reads it; choosing a 3-plane pilot refuses.
    vol = readers.read_dicom(folder, series_uid="1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.481")
    assert vol.shape == (16, 16, 1)
    with pytest.raises(DataError, match="3 different orientations"):
        readers.read_dicom(folder, series_uid="1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.136")
    with pytest.raises(DataError, match="has no series 9.9"):
        readers.read_dicom(folder, series_uid="9.9")


def test_real_radial_series_with_mixed_orientations_is_refused(pydicom_series):
    with pytest.raises(DataError, match="7 different orientations"):
        readers.read_dicom(pydicom_series("98892003/MR700"))


def test_real_multiframe_rt_dose_grid(pydicom_data):
    path = pydicom_data("rtdose.dcm")
    ds = pydicom.dcmread(path)
    vol = readers.read_dicom(path)
    assert vol.shape == (10, 10, 15) and vol.spacing == pytest.approx((10, 10, 5))
    expected = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)  # (frames, rows, cols)
    np.testing.assert_allclose(vol.array, expected.transpose(2, 1, 0), rtol=1e-6)
    offsets = np.array(ds.GridFrameOffsetVector, float)
    top = LPS_TO_RAS[:3, :3] @ (np.array(ds.ImagePositionPatient, float) + [0, 0, offsets[-1]])
    np.testing.assert_allclose(vol.world([0, 0, 14]), top)


def test_real_enhanced_frame_geometry_from_functional_groups(pydicom_data):
    vol = readers.read_dicom(pydicom_data("liver_1frame.dcm"))
    ds = pydicom.dcmread(pydicom_data("liver_1frame.dcm"))
    pos = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    np.testing.assert_allclose(vol.origin, LPS_TO_RAS[:3, :3] @ np.array(pos, float))
    assert vol.shape == (512, 512, 1) and vol.modality == "SEG"


def test_files_without_geometry_are_refused_not_guessed(pydicom_data, pydicom_series):
    with pytest.raises(DataError, match="colour multi-frame .*read_dicom_frames"):
        readers.read_dicom(pydicom_data("examples_ybr_color.dcm"))
    # ... but they read as plain 2D images in pixel units when asked to
    flat = readers.read_image_2d(pydicom_data("JPEG2000.dcm"))
    assert flat.shape == (256, 1024, 1) and flat.meta["spacing_known"] is False
    rgb = readers.read_image_2d(pydicom_data("SC_rgb_rle.dcm"))
    assert rgb.array.shape == (100, 100, 1, 3)
    with pytest.raises(DataError, match="has 30 frames"):
        readers.read_image_2d(pydicom_data("examples_ybr_color.dcm"))
    frames = readers.read_dicom_frames(pydicom_data("examples_ybr_color.dcm"))
    assert frames.shape == (30, 240, 320, 3) and frames.dtype == np.uint8
    with pytest.raises(DataError, match="has no pixel data"):
        readers.read_dicom(pydicom_data("rtplan.dcm"))
    with pytest.raises(DataError, match="no DICOM image files"):
        readers.read_dicom(pydicom_series("TINY_ALPHA"))


# ------------------------------------------------------------------ synthetic series
def test_shuffled_series_reads_like_the_sorted_one(make_series, tmp_path):
    folder, truth = make_series(7, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))  # sagittal
    vol = readers.read_dicom(folder)
    np.testing.assert_array_equal(vol.array, truth)
    # The same files copied under names in position order read into the same volume.
    sorted_dir = tmp_path / "sorted"
    sorted_dir.mkdir()
    for k, f in enumerate(vol.meta["slice_files"]):
        shutil.copy(f, sorted_dir / f"{k:03d}.dcm")
    again = readers.read_dicom(sorted_dir)
    np.testing.assert_array_equal(again.array, vol.array)
    np.testing.assert_array_equal(again.affine, vol.affine)
    # Geometry: origin at the first position, i along the row cosine, k along the normal.
    np.testing.assert_allclose(vol.origin, LPS_TO_RAS[:3, :3] @ np.array([-20.0, 30.0, 40.0]))
    assert vol.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert vol.orientation == "PIR"  # LPS (0,1,0) -> RAS P; (0,0,-1) -> I; normal (-1,0,0) -> R


def test_rescale_slope_and_intercept_apply_per_file(make_series):
    folder, truth = make_series(4, slope=0.5, intercept=-100.0)
    vol = readers.read_dicom(folder)
    np.testing.assert_allclose(vol.array, truth)
    ds = pydicom.dcmread(vol.meta["slice_files"][2])
    np.testing.assert_allclose(vol.array[:, :, 2], apply_modality_lut(ds.pixel_array, ds).T)


def test_gap_and_uneven_spacing_are_refused(make_series, tmp_path):
    folder, _ = make_series(6, skip=(3,))
    with pytest.raises(DataError, match=r"a gap: 1 missing slice\(s\).*5.000 mm apart.*2.500 mm"):
        readers.read_dicom(folder)
    uneven = tmp_path / "uneven"
    uneven.mkdir()
    for k, z in enumerate([0.0, 2.5, 5.0, 8.0, 10.5]):
        write_slice(uneven / f"{k}.dcm", np.zeros((4, 4)), (0, 0, z), instance=k + 1)
    with pytest.raises(DataError, match="uneven slice spacing"):
        readers.read_dicom(uneven)


def test_two_series_in_one_folder_are_listed(make_series):
    folder, _ = make_series(4, series_uid="1.2.840.1")
    make_series(3, series_uid="1.2.840.2", folder="series/second")  # found recursively
    with pytest.raises(DataError, match="holds 2 DICOM series") as err:
        readers.read_dicom(folder)
    assert "1.2.840.1 (4 files" in str(err.value) and "1.2.840.2 (3 files" in str(err.value)
    assert readers.read_dicom(folder, series_uid="1.2.840.2").shape == (10, 12, 3)


def test_duplicate_positions_missing_geometry_and_bad_files(make_series, tmp_path):
    dup = tmp_path / "dup"
    dup.mkdir()
    for k, z in enumerate([0.0, 2.5, 2.5, 5.0]):
        write_slice(dup / f"{k}.dcm", np.zeros((4, 4)), (0, 0, z), instance=k + 1)
    with pytest.raises(DataError, match="2 slices share a position"):
        readers.read_dicom(dup)
    path = write_slice(tmp_path / "nopos.dcm", np.zeros((4, 4)), (0, 0, 0))
    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient
    ds.save_as(path)
    with pytest.raises(DataError, match="has no ImagePositionPatient.*will not be guessed"):
        readers.read_dicom(path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all")
    with pytest.raises(DataError, match="not a DICOM file"):
        readers.read_volume(junk)


def test_gantry_tilt_is_kept_as_a_sheared_affine(make_series):
    folder, truth = make_series(5, step=(0.0, 0.5, 2.0))  # positions drift in y: tilted gantry
    vol = readers.read_dicom(folder)
    np.testing.assert_array_equal(vol.array, truth)
    np.testing.assert_allclose(vol.affine[:3, 2], [0.0, -0.5, 2.0])  # RAS of the LPS step
    assert vol.meta["gantry_tilt_deg"] == pytest.approx(np.degrees(np.arctan(0.25)))


def test_enhanced_multiframe_frames_are_sorted_by_position(tmp_path):
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "mf.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.PatientID, ds.SeriesInstanceUID = "CT", "MF1", "1.2.9"
    z = [5.0, 0.0, 10.0, 2.5, 7.5]  # frames out of order on disk
    frames = np.stack([np.full((3, 4), 100 * (k + 1)) for k in range(5)]).astype(np.uint16)
    shared = Dataset()
    pm, po, pvt = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing = [1.5, 0.5]
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    pvt.RescaleSlope, pvt.RescaleIntercept = 2, -1000
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for zk in z:
        item, pp = Dataset(), Dataset()
        pp.ImagePositionPatient = [10.0, 20.0, zk]
        item.PlanePositionSequence = Sequence([pp])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.NumberOfFrames = 5
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 3, 4, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = frames.tobytes()
    ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
    vol = readers.read_dicom(tmp_path / "mf.dcm")
    assert vol.shape == (4, 3, 5) and vol.spacing == pytest.approx((0.5, 1.5, 2.5))
    order = np.argsort(z)
    np.testing.assert_array_equal(vol.array[0, 0, :], 2.0 * 100 * (order + 1) - 1000)
    assert vol.origin == pytest.approx((-10.0, -20.0, 0.0))


# ------------------------------------------------------------------ NIfTI
@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_nifti_read_write_read_is_exact(name, tmp_path, nibabel_data):
    vol = readers.read_nifti(nibabel_data(name))
    out = readers.write_nifti(vol, tmp_path / f"copy_{name}")
    again = readers.read_nifti(out)
    np.testing.assert_array_equal(again.affine, vol.affine)
    np.testing.assert_array_equal(again.array, vol.array)
    assert again.array.dtype == vol.array.dtype
    hdr = nib.load(out).header
    assert int(hdr["sform_code"]) == vol.meta["sform_code"] and hdr.get_xyzt_units()[0] == "mm"
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


@pytest.mark.parametrize("source", ["synthetic oblique", "real CT5N"])
def test_dicom_to_nifti_keeps_world_coordinates_of_corners(source, make_series, tmp_path,
                                                           pydicom_series):
    if source == "real CT5N":
        vol = readers.read_dicom(pydicom_series("98892001/CT5N"))
    else:
        folder, _ = make_series(5, orientation=(0.8, 0.6, 0.0, 0.0, 0.0, -1.0),
                                origin=(-97.3, 51.4, 123.45))
        vol = readers.read_dicom(folder)
    for nifti2, atol in ((False, 1e-4), (True, 0.0)):
        out = readers.write_nifti(vol, tmp_path / f"v{int(nifti2)}.nii.gz", nifti2=nifti2)
        back = readers.read_nifti(out)
        np.testing.assert_array_equal(back.array, vol.array)
        np.testing.assert_allclose(back.corners_world(), vol.corners_world(), atol=atol, rtol=0)
    assert isinstance(nib.load(tmp_path / "v1.nii.gz"), nib.Nifti2Image)


def test_broken_or_geometry_free_nifti_is_refused(tmp_path, nibabel_data):
    src = nibabel_data("anatomical.nii").read_bytes()
    broken = tmp_path / "broken.nii"
    broken.write_bytes(src[:200])  # header cut in the middle
    with pytest.raises(DataError, match="cannot read NIfTI") as err:
        readers.read_volume(broken)
    assert "\n" not in str(err.value)
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(src[: len(src) // 2])  # data cut
    with pytest.raises(DataError, match="cannot read NIfTI"):
        readers.read_nifti(truncated)
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "nogeo.nii")
    with pytest.raises(DataError, match="neither an sform nor a qform"):
        readers.read_nifti(tmp_path / "nogeo.nii")
    allowed = readers.read_nifti(tmp_path / "nogeo.nii", allow_missing_geometry=True)
    assert allowed.shape == (4, 4, 4)


def test_writer_converts_types_nifti_lacks(tmp_path):
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    for array, dtype in ((np.ones((3, 3, 3), bool), np.uint8),
                         (np.full((3, 3, 3), 0.25, np.float16), np.float32),
                         (np.arange(27, dtype=np.int64).reshape(3, 3, 3), np.int32)):
        out = readers.write_nifti(Volume(array, affine), tmp_path / "t.nii.gz")
        back = readers.read_nifti(out)
        assert back.array.dtype == dtype
        np.testing.assert_array_equal(back.array, array.astype(dtype))


def test_writer_refuses_bad_paths_and_values_without_leaving_files(tmp_path):
    vol = Volume(np.array([[[2**40]]], np.int64), np.eye(4))
    with pytest.raises(DataError, match="int64 values do not fit"):
        readers.write_nifti(vol, tmp_path / "big.nii.gz")
    with pytest.raises(UsageError, match="must end in .nii"):
        readers.write_nifti(vol, tmp_path / "big.img")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 2D images and masks
def test_png_slice_with_mask(tmp_path, pydicom_data):
    img = np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 3:8] = 2
    cv2.imwrite(str(tmp_path / "img.png"), img)
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    image, label = readers.read_slice_pair(tmp_path / "img.png", tmp_path / "mask.png")
    assert image.shape == (30, 20, 1) and label.shape == (30, 20, 1)
    np.testing.assert_array_equal(image.array[:, :, 0], img.T)
    assert label.array[4, 7, 0] == 2 and label.array[8, 7, 0] == 0  # i = x, j = y
    cv2.imwrite(str(tmp_path / "small.png"), mask[:10])
    with pytest.raises(DataError,
                       match=r"mask .* is 30x10 pixels \(width x height\), its image .* is 30x20"):
        readers.read_slice_pair(tmp_path / "img.png", tmp_path / "small.png")
    colour = np.dstack([mask, mask * 0, mask])
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    with pytest.raises(DataError, match="is a colour image"):
        readers.read_slice_pair(tmp_path / "img.png", tmp_path / "colour.png")
    # A DICOM slice with a PNG mask: the mask takes the slice's geometry.
    ct = pydicom_data("CT_small.dcm")
    cv2.imwrite(str(tmp_path / "ct_mask.png"), np.zeros((128, 128), np.uint8))
    ct_img, ct_mask = readers.read_case(ct, tmp_path / "ct_mask.png")
    np.testing.assert_array_equal(ct_mask.affine, ct_img.affine)


def test_label_with_other_shape_or_affine_is_refused(tmp_path, nibabel_data):
    image = readers.read_nifti(nibabel_data("anatomical.nii"))
    shifted = image.affine.copy()
    shifted[0, 3] += 1.5
    moved = image.with_array(image.array, affine=shifted)
    with pytest.raises(DataError, match="different affine .*1.5 mm"):
        check_label_matches(image, moved)
    readers.write_nifti(moved, tmp_path / "lab.nii")
    with pytest.raises(DataError, match="different affine"):
        readers.read_case(nibabel_data("anatomical.nii"), tmp_path / "lab.nii")
    cropped = image.with_array(image.array[:-1])
    with pytest.raises(DataError, match=r"has shape \(32, 41, 25\)"):
        check_label_matches(image, cropped)
