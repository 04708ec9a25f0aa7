"""Synthetic DICOM series with known geometry (for tests and tiny datasets).

Real scanner series are precious and few offline; these files let tests check the reader's
sorting and refusals against exact truth: known positions, shuffled InstanceNumbers and file
names, chosen RescaleSlope/Intercept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom_slice(path: str | Path, pixels: np.ndarray, position,
                      orientation=(1, 0, 0, 0, 1, 0), spacing=(0.8, 0.7), *, instance: int = 1,
                      series_uid: str = "1.2.3.4.5", slope: float = 1.0,
                      intercept: float = -1024.0, patient: str = "P001",
                      modality: str = "CT") -> Path:
    """Write one CT image (explicit VR little endian, uint16 pixels ``(rows, cols)``).

    Args:
        path: the file to write.
        pixels: stored values (before the modality LUT), shape (rows, cols).
        position: ImagePositionPatient (LPS mm) of the first pixel's centre.
        orientation: ImageOrientationPatient (row cosines, then column cosines).
        spacing: PixelSpacing (between rows, between columns) in mm.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient
    ds.Modality = modality
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
    ds.SliceThickness = "1.0"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.asarray(pixels).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return Path(path)


def write_dicom_series(folder: str | Path, n: int = 6, *, rows: int = 12, cols: int = 10,
                       origin=(-20.0, 30.0, 40.0), orientation=(1, 0, 0, 0, 1, 0),
                       spacing=(0.8, 0.7), step=None, skip=(), slope: float = 1.0,
                       intercept: float = -1024.0, series_uid: str = "1.2.3.4.5",
                       patient: str = "P001", seed: int = 0) -> np.ndarray:
    """Write ``n`` slices (minus ``skip``) with shuffled InstanceNumbers and file names.

    Slice ``k`` sits at ``origin + k * step`` (default: 2.5 mm along the normal) and stores
    ``1000 + 10 k + row + 100 col``. Returns the expected modality-LUT volume
    ``[i=col, j=row, k]`` (float32), including skipped slices.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ori = np.asarray(orientation, float)
    normal = np.cross(ori[:3], ori[3:])
    step = normal * 2.5 if step is None else np.asarray(step, float)
    order = rng.permutation(n)  # instance numbers unrelated to position
    truth = []
    for k in range(n):
        pix = 1000 + 10 * k + np.arange(rows)[:, None] + 100 * np.arange(cols)[None, :]
        truth.append(pix.T * slope + intercept)
        if k in skip:
            continue
        write_dicom_slice(folder / f"IM{order[k]:04d}", pix, np.asarray(origin) + k * step,
                          orientation, spacing, instance=int(order[k]) + 1,
                          series_uid=series_uid, slope=slope, intercept=intercept,
                          patient=patient)
    return np.stack(truth, axis=-1).astype(np.float32)


def write_sphere_cases(folder: str | Path, n_cases: int = 6, *, size: int = 32,
                       n_patients: int | None = None, spacing=(1.5, 1.5, 2.0),
                       seed: int = 0) -> Path:
    """A tiny segmentation dataset in the folder convention of
    :class:`~visionsuite_tasks.medical.cases.CaseTable`: ``images/<case>.nii.gz`` (noisy
    MR-like intensities), ``labels/<case>.nii.gz`` (0 background, 1 a sphere), and
    ``patients.csv`` (two cases per patient by default). Every case has its own LPS affine
    (origin varies), so geometry handling is exercised. Returns ``folder``.
    """
    from visionsuite_tasks.medical.readers import write_nifti
    from visionsuite_tasks.medical.volume import LPS_TO_RAS, Volume

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    n_patients = n_patients or max(1, (n_cases + 1) // 2)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), axis=-1)
    rows = ["case,patient"]
    for k in range(n_cases):
        centre = rng.uniform(0.35 * size, 0.65 * size, 3)
        radius = rng.uniform(0.15 * size, 0.3 * size)
        label = (np.linalg.norm(grid - centre, axis=-1) < radius).astype(np.uint8)
        image = (100.0 + 80.0 * label + rng.normal(0.0, 25.0, label.shape)).astype(np.float32)
        lps = np.diag(list(spacing) + [1.0])
        lps[:3, 3] = rng.uniform(-50.0, 50.0, 3)
        affine = LPS_TO_RAS @ lps
        case = f"case_{k:03d}"
        write_nifti(Volume(image, affine), folder / "images" / f"{case}.nii.gz")
        write_nifti(Volume(label, affine), folder / "labels" / f"{case}.nii.gz")
        rows.append(f"{case},patient_{k % n_patients:02d}")
    (folder / "patients.csv").write_text("\n".join(rows) + "\n")
    return folder
