"""Readers and writers for medical volumes: NIfTI (nibabel), DICOM (pydicom), 2D images + masks.

Every reader returns a :class:`~visionsuite_tasks.medical.volume.Volume` (array ``[i, j, k]``,
RAS+ affine in mm; see that module). Geometry is taken from the file or the reader refuses with
one line (:class:`~visionsuite.errors.DataError`); it is never invented:

* NIfTI: nibabel's affine (sform when its code is set, else qform). A file with neither
  (both codes 0) is refused unless ``allow_missing_geometry=True``.
* DICOM series (a folder) and multi-frame files: slices are sorted by their
  ImagePositionPatient projected on the slice normal (the cross product of the two
  ImageOrientationPatient direction cosines) -- never by InstanceNumber. The third column of
  the affine is the step between consecutive positions, so gantry tilt (a sheared grid) is
  kept exactly. Refused: missing position/orientation/pixel spacing, slices with different
  orientations, pixel spacings or sizes, two slices at one position, a gap (missing slice),
  uneven spacing, positions that are not on one line, and a folder holding several series
  (the message lists each SeriesInstanceUID with its file count; pass ``series_uid=``).
* Pixel values go through the modality LUT (RescaleSlope / RescaleIntercept, per slice):
  CT comes out in Hounsfield units, as ``pydicom.pixels.apply_modality_lut`` gives them.
  RT dose grids are scaled by DoseGridScaling (Gy).

DICOM's LPS+ patient coordinates become RAS+ by negating x and y; voxel ``i`` runs along
a DICOM row (the column index), ``j`` down the columns (the row index), ``k`` across slices.

:func:`write_nifti` writes atomically (a temporary file renamed into place) with sform and
qform both set from the affine (codes 1 unless the volume was read with others), units mm.
NIfTI-1 stores the sform in float32: an affine read from a NIfTI-1 file round-trips
bit-exactly; a float64 affine (from DICOM) is kept to float32 precision (< 1e-5 mm for
coordinates below 256 mm). ``nifti2=True`` writes NIfTI-2, whose sform is float64 (exact).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical.volume import LPS_TO_RAS, Volume, check_label_matches

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_DICOMDIR_UID = "1.2.840.10008.1.3.10"

# Tolerances for DICOM geometry checks.
ORIENTATION_ATOL = 1e-4  # direction cosines
SPACING_RTOL = 0.01  # slice spacing may vary by 1 % ...
SPACING_ATOL_MM = 0.01  # ... or 0.01 mm, whichever is larger
LINE_ATOL_MM = 0.05  # slice positions off the line through the first and last


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


# ------------------------------------------------------------------ dispatch
def read_volume(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read any supported volume: NIfTI file, DICOM file or folder, or a 2D image.

    Args:
        path: ``.nii`` / ``.nii.gz``; a DICOM file (single or multi-frame); a folder of DICOM
            files (one series, or pass ``series_uid``); a PNG/JPEG/TIFF 2D image.
        series_uid: which series to read when a DICOM folder holds several.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file or folder. Received: path={str(path)!r}")
    if path.is_dir():
        return read_dicom(path, series_uid=series_uid)
    if _is_nifti(path):
        return read_nifti(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image_2d(path)
    return read_dicom(path)


# ------------------------------------------------------------------ NIfTI
def read_nifti(path: str | Path, *, allow_missing_geometry: bool = False) -> Volume:
    """Read a NIfTI-1/2 file (``.nii`` or ``.nii.gz``) into a RAS+ :class:`Volume`.

    3D files give ``[i, j, k]``; a 4th axis becomes channels (``[i, j, k, c]``); 2D files get a
    ``k`` axis of 1. Scaling (``scl_slope`` / ``scl_inter``) is applied when set; otherwise the
    stored dtype is kept (labels stay integers).
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such NIfTI file. Received: path={str(path)!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(str(path))
            if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
                raise DataError(f"{path} is not a NIfTI image (nibabel read it as "
                                f"{type(img).__name__}). Received: path={str(path)!r}")
            array = np.asanyarray(img.dataobj)
    except DataError:
        raise
    except Exception as exc:  # nibabel raises many types for broken headers / truncated data
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read NIfTI {path}: {msg}. Received: path={str(path)!r}") from None
    header = img.header
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    if sform_code == 0 and qform_code == 0 and not allow_missing_geometry:
        raise DataError(f"NIfTI {path} has neither an sform nor a qform (both codes 0): its "
                        f"orientation is unknown; fix the header or pass "
                        f"allow_missing_geometry=True. Received: sform_code=0, qform_code=0")
    array = np.asarray(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))  # TF and OpenCV want native order
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim == 5 and array.shape[3] == 1:  # NIfTI vectors: (I, J, K, 1, C)
        array = array[:, :, :, 0, :]
    if array.ndim not in (3, 4):
        raise DataError(f"NIfTI {path} has {array.ndim} dimensions; expected 3 (a volume) or 4 "
                        f"(channels). Received: shape {array.shape}")
    meta = {"sform_code": sform_code, "qform_code": qform_code,
            "nifti_version": 2 if isinstance(img, nib.Nifti2Image) else 1}
    if sform_code and qform_code:
        q = header.get_qform()
        if not np.allclose(q, img.affine, atol=1e-3):
            meta["qform_differs_mm"] = float(np.max(np.abs(q - img.affine)))
    return Volume(np.asarray(array), np.asarray(img.affine, np.float64), source=str(path),
                  meta=meta)


def write_nifti(volume: Volume, path: str | Path, *, dtype=None, nifti2: bool = False) -> Path:
    """Write ``volume`` as NIfTI with exactly its affine (atomically). Returns the path.

    Args:
        volume: the volume; its array is written as is (bool becomes uint8, int64 int32).
        path: ending in ``.nii`` or ``.nii.gz``.
        dtype: on-disk data type (default: the array's).
        nifti2: write NIfTI-2 (float64 sform: affines from DICOM round-trip bit-exactly).
    """
    import nibabel as nib

    path = Path(path)
    if not _is_nifti(path):
        raise UsageError(f"a NIfTI path must end in .nii or .nii.gz. Received: path={str(path)!r}")
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:  # NIfTI has no half-precision type
        array = array.astype(np.float32)
    elif array.dtype == np.int64:
        if array.size and (array.min() < np.iinfo(np.int32).min
                           or array.max() > np.iinfo(np.int32).max):
            raise DataError(f"int64 values do not fit NIfTI's int32. Received: range "
                            f"[{array.min()}, {array.max()}]")
        array = array.astype(np.int32)
    if dtype is not None:
        array = array.astype(dtype)
    cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = cls(array, volume.affine)
    header = img.header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qform of a sheared affine: nibabel drops the shear
        img.set_sform(volume.affine, code=int(volume.meta.get("sform_code") or 1))
        img.set_qform(volume.affine, code=int(volume.meta.get("qform_code") or 1))
    header.set_xyzt_units("mm")
    header.set_data_dtype(array.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ DICOM
@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder."""

    uid: str
    files: tuple[Path, ...]
    modality: str
    description: str
    patient_id: str

    def __str__(self) -> str:
        desc = f" {self.description!r}" if self.description else ""
        return f"{self.uid} ({len(self.files)} files, {self.modality or '?'}{desc})"


@dataclasses.dataclass
class _Slice:
    """One 2D plane of a series (a file or a frame) with its geometry."""

    position: np.ndarray  # (3,) LPS mm, ImagePositionPatient
    orientation: np.ndarray  # (6,) row then column direction cosines
    pixel_spacing: np.ndarray  # (2,) row spacing (between rows), column spacing
    shape: tuple[int, int]  # rows, columns
    pixels: Callable[[], np.ndarray]  # -> (rows, cols) float32 after the modality LUT
    name: str


def _dcmread(path: Path, **kw):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), **kw)
    except InvalidDicomError:
        return None
    except Exception as exc:
        raise DataError(f"cannot read DICOM {path}: {str(exc)[:200] or type(exc).__name__}. "
                        f"Received: path={str(path)!r}") from None


def _floats(value, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: {what} must be {n} numbers. Received: {what}={value!r}")
    return arr


def _require(ds, keyword: str, where: str):
    value = ds.get(keyword)
    if value is None or value == "":
        raise DataError(f"{where} has no {keyword}: its geometry is missing and will not be "
                        f"guessed (read it as a 2D image with read_image_2d, or as frames with "
                        f"read_dicom_frames). Received: {keyword}=None")
    return value


def list_dicom_series(folder: str | Path) -> list[SeriesInfo]:
    """Every image series in ``folder`` (searched recursively), largest first.

    Non-DICOM files and DICOMDIR files are skipped; so are DICOM files without pixel data.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"not a folder. Received: folder={str(folder)!r}")
    groups: dict[str, list] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ds = _dcmread(path, stop_before_pixels=False, defer_size="1 KB")
        if ds is None or "PixelData" not in ds:
            continue
        if str(getattr(ds.get("file_meta", {}), "MediaStorageSOPClassUID", "")) == _DICOMDIR_UID:
            continue
        groups[str(ds.get("SeriesInstanceUID", ""))].append((path, ds))
    series = [SeriesInfo(uid, tuple(p for p, _ in items), str(items[0][1].get("Modality", "")),
                         str(items[0][1].get("SeriesDescription", "")),
                         str(items[0][1].get("PatientID", "")))
              for uid, items in groups.items()]
    return sorted(series, key=lambda s: (-len(s.files), s.uid))


def read_dicom(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a DICOM file (single slice or multi-frame) or a folder holding one series.

    Args:
        path: a file, or a folder (searched recursively for DICOM files).
        series_uid: the SeriesInstanceUID to read when the folder holds several series.
    """
    path = Path(path)
    if path.is_dir():
        return _read_series_folder(path, series_uid)
    if not path.is_file():
        raise DataError(f"no such DICOM file or folder. Received: path={str(path)!r}")
    ds = _dcmread(path)
    if ds is None:
        raise DataError(f"{path} is not a DICOM file (no DICM preamble). "
                        f"Received: path={str(path)!r}")
    if "PixelData" not in ds:
        raise DataError(f"DICOM {path} has no pixel data (it is a "
                        f"{ds.get('Modality', 'non-image')} object). Received: path={str(path)!r}")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        slices = _frames_as_slices(ds, str(path))
    else:
        slices = [_file_slice(path, ds)]
    return _stack(slices, ds, str(path))


def _read_series_folder(folder: Path, series_uid: str | None) -> Volume:
    series = list_dicom_series(folder)
    if not series:
        raise DataError(f"no DICOM image files in {folder}. Received: path={str(folder)!r}")
    if series_uid is not None:
        chosen = [s for s in series if s.uid == series_uid]
        if not chosen:
            raise DataError(f"{folder} has no series {series_uid}; it has: "
                            f"{'; '.join(map(str, series))}. Received: series_uid={series_uid!r}")
        info = chosen[0]
    elif len(series) > 1:
        raise DataError(f"{folder} holds {len(series)} DICOM series: "
                        f"{'; '.join(map(str, series))}; pass series_uid= to choose one. "
                        f"Received: path={str(folder)!r}")
    else:
        info = series[0]
    headers = [_dcmread(p, defer_size="1 KB") for p in info.files]
    multi = [p for p, ds in zip(info.files, headers) if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multi and len(info.files) == 1:  # a folder holding one multi-frame file
        return read_dicom(multi[0])
    if multi:
        raise DataError(f"series {info.uid} in {folder} mixes multi-frame files with others; read "
                        f"the multi-frame file on its own. Received: {multi[0]}")
    slices = [_file_slice(p, ds) for p, ds in zip(info.files, headers)]
    return _stack(slices, headers[0], str(folder))


def _modality_lut(ds, arr: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    if str(ds.get("Modality", "")) == "RTDOSE" and "DoseGridScaling" in ds:
        return arr.astype(np.float32) * np.float32(float(ds.DoseGridScaling))
    return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)


def _pixel_array(ds, where: str) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:
        raise DataError(f"cannot decode the pixels of {where}: {str(exc)[:200]}. "
                        f"Received: TransferSyntaxUID={ds.file_meta.get('TransferSyntaxUID')}"
                        ) from None


def _file_slice(path: Path, ds) -> _Slice:
    where = f"DICOM {path}"
    pos = _floats(_require(ds, "ImagePositionPatient", where), 3, "ImagePositionPatient", where)
    ori = _floats(_require(ds, "ImageOrientationPatient", where), 6, "ImageOrientationPatient",
                  where)
    ps = _floats(_require(ds, "PixelSpacing", where), 2, "PixelSpacing", where)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DataError(f"{where} is a colour image; volumes are single-channel. Received: "
                        f"SamplesPerPixel={ds.SamplesPerPixel}")

    def pixels(ds=ds, where=where):
        return _modality_lut(ds, _pixel_array(ds, where))

    return _Slice(pos, ori, ps, (int(ds.Rows), int(ds.Columns)), pixels, str(path))


def _frame_item(ds, frame: int, sequence: str):
    """The first item of a functional-group ``sequence`` for ``frame`` (per-frame wins)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    groups = ([per_frame[frame]] if per_frame and len(per_frame) > frame else []) + (
        [shared[0]] if shared else [])
    for group in groups:
        items = group.get(sequence)
        if items:
            return items[0]
    return None


def _frames_as_slices(ds, where: str) -> list[_Slice]:
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DataError(f"DICOM {where} is a colour multi-frame (cine) file; read it with "
                        f"read_dicom_frames. Received: SamplesPerPixel={ds.SamplesPerPixel}")
    cache: dict[str, np.ndarray] = {}

    def frames() -> np.ndarray:
        if "all" not in cache:
            arr = _pixel_array(ds, f"DICOM {where}")
            cache["all"] = arr.reshape(n, int(ds.Rows), int(ds.Columns))
        return cache["all"]

    shape = (int(ds.Rows), int(ds.Columns))
    slices = []
    if "PerFrameFunctionalGroupsSequence" in ds:  # enhanced multi-frame
        for f in range(n):
            w = f"DICOM {where} frame {f + 1}"
            pos_item = _frame_item(ds, f, "PlanePositionSequence")
            ori_item = _frame_item(ds, f, "PlaneOrientationSequence")
            pm_item = _frame_item(ds, f, "PixelMeasuresSequence")
            pos = _floats(_require(pos_item or {}, "ImagePositionPatient", w), 3,
                          "ImagePositionPatient", w)
            ori = _floats(_require(ori_item or {}, "ImageOrientationPatient", w), 6,
                          "ImageOrientationPatient", w)
            ps = _floats(_require(pm_item or {}, "PixelSpacing", w), 2, "PixelSpacing", w)
            pvt = _frame_item(ds, f, "PixelValueTransformationSequence")
            slope = float(pvt.get("RescaleSlope", 1.0)) if pvt is not None else float(
                ds.get("RescaleSlope", 1.0))
            inter = float(pvt.get("RescaleIntercept", 0.0)) if pvt is not None else float(
                ds.get("RescaleIntercept", 0.0))

            def pixels(f=f, slope=slope, inter=inter):
                return frames()[f].astype(np.float32) * np.float32(slope) + np.float32(inter)

            slices.append(_Slice(pos, ori, ps, shape, pixels, w))
        return slices
    w = f"DICOM {where}"
    pos0 = _floats(_require(ds, "ImagePositionPatient", w), 3, "ImagePositionPatient", w)
    ori = _floats(_require(ds, "ImageOrientationPatient", w), 6, "ImageOrientationPatient", w)
    ps = _floats(_require(ds, "PixelSpacing", w), 2, "PixelSpacing", w)
    offsets = _floats(_require(ds, "GridFrameOffsetVector", w), n, "GridFrameOffsetVector", w)
    normal = np.cross(ori[:3], ori[3:])
    if offsets[0] != 0:  # "absolute" offsets are z coordinates (PS3.3 C.8.8.3.2)
        offsets = offsets - offsets[0]
    for f in range(n):
        def pixels(f=f):
            return _modality_lut(ds, frames()[f])

        slices.append(_Slice(pos0 + offsets[f] * normal, ori, ps, shape, pixels,
                             f"{w} frame {f + 1}"))
    return slices


def _stack(slices: Sequence[_Slice], ds, source: str) -> Volume:
    """Check the geometry of ``slices``, sort them along the normal and build the volume."""
    ref = slices[0]
    bad = [s for s in slices if not np.allclose(s.orientation, ref.orientation,
                                                atol=ORIENTATION_ATOL)]
    if bad:
        n_kinds = len({tuple(np.round(s.orientation, 3)) for s in slices})
        raise DataError(f"{source}: slices have {n_kinds} different orientations (e.g. "
                        f"{Path(ref.name).name} and {Path(bad[0].name).name}); a volume needs one. "
                        f"Received: ImageOrientationPatient {np.round(ref.orientation, 4).tolist()}"
                        f" and {np.round(bad[0].orientation, 4).tolist()}")
    for attr, label in (("pixel_spacing", "PixelSpacing"), ("shape", "Rows/Columns")):
        odd = [s for s in slices if not np.allclose(getattr(s, attr), getattr(ref, attr))]
        if odd:
            raise DataError(f"{source}: slices differ in {label} ({Path(ref.name).name}: "
                            f"{list(getattr(ref, attr))}, {Path(odd[0].name).name}: "
                            f"{list(getattr(odd[0], attr))}). Received: {len(odd)} of "
                            f"{len(slices)} slices differ")
    row, col = ref.orientation[:3], ref.orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(
            row @ col) > 1e-3:
        raise DataError(f"{source}: ImageOrientationPatient is not two orthonormal vectors. "
                        f"Received: {ref.orientation.tolist()}")
    normal = np.cross(row, col)
    depth = np.array([s.position @ normal for s in slices])
    order = np.argsort(depth, kind="stable")
    slices = [slices[i] for i in order]
    depth = depth[order]
    meta: dict = {}
    if len(slices) == 1:
        thick = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
        if thick is None or float(thick) <= 0:
            thick, meta["slice_thickness_assumed"] = 1.0, True
        step = normal * float(thick)
    else:
        steps = np.diff(depth)
        dup = int(np.sum(steps < SPACING_ATOL_MM))
        if dup:
            k = int(np.argmax(steps < SPACING_ATOL_MM))
            raise DataError(f"{source}: {dup + 1} slices share a position along the normal (e.g. "
                            f"{Path(slices[k].name).name} and {Path(slices[k + 1].name).name} at "
                            f"{depth[k]:.3f} mm): several echoes, phases or acquisitions in one "
                            f"series? Received: {len(slices)} slices")
        median = float(np.median(steps))
        tol = max(SPACING_ATOL_MM, SPACING_RTOL * median)
        off = np.abs(steps - median) > tol
        if np.any(off):
            k = int(np.argmax(off))
            ratio = steps[k] / median
            kind = (f"a gap: {round(ratio) - 1} missing slice(s)" if ratio > 1.5 and abs(
                ratio - round(ratio)) < 0.1 else "uneven slice spacing")
            raise DataError(f"{source}: {kind} between {Path(slices[k].name).name} and "
                            f"{Path(slices[k + 1].name).name} ({steps[k]:.3f} mm apart, the "
                            f"series' spacing is {median:.3f} mm). Received: positions along the "
                            f"normal {np.round(depth, 3).tolist()[:12]}")
        first, last = slices[0].position, slices[-1].position
        step = (last - first) / (len(slices) - 1)
        expected = first[None, :] + np.arange(len(slices))[:, None] * step[None, :]
        positions = np.stack([s.position for s in slices])
        dev = float(np.max(np.linalg.norm(positions - expected, axis=1)))
        if dev > max(LINE_ATOL_MM, SPACING_RTOL * median):
            raise DataError(f"{source}: slice positions are not on one line ({dev:.3f} mm off); "
                            f"a volume needs a regular grid. Received: {len(slices)} slices")
        tilt = np.degrees(np.arccos(np.clip(step @ normal / np.linalg.norm(step), -1, 1)))
        if tilt > 0.01:
            meta["gantry_tilt_deg"] = float(tilt)
    lps = np.eye(4)
    lps[:3, 0] = row * ref.pixel_spacing[1]  # i runs along a row: the column index
    lps[:3, 1] = col * ref.pixel_spacing[0]  # j runs down a column: the row index
    lps[:3, 2] = step
    lps[:3, 3] = slices[0].position
    array = np.empty((ref.shape[1], ref.shape[0], len(slices)), np.float32)
    for k, s in enumerate(slices):
        px = s.pixels()
        if px.shape != ref.shape:
            raise DataError(f"{s.name}: pixel data has shape {px.shape}, Rows/Columns say "
                            f"{ref.shape}. Received: shape {px.shape}")
        array[:, :, k] = px.T
    meta.update({
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "n_slices": len(slices),
        "slice_files": [s.name for s in slices],
    })
    return Volume(array, LPS_TO_RAS @ lps, modality=str(ds.get("Modality", "")) or None,
                  patient_id=str(ds.get("PatientID", "")) or None, source=source, meta=meta)


def read_dicom_frames(path: str | Path) -> np.ndarray:
    """The frames of a DICOM file as an array ``(T, rows, cols)`` or ``(T, rows, cols, 3)`` RGB.

    For cine and ultrasound clips, which have no 3D geometry: no affine, no sorting; frames
    stay in file order. YBR colour data is converted to RGB.
    """
    path = Path(path)
    ds = _dcmread(path) if path.is_file() else None
    if ds is None or "PixelData" not in ds:
        raise DataError(f"not a DICOM image file. Received: path={str(path)!r}")
    arr = _pixel_array(ds, f"DICOM {path}")
    n = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp == 3 and str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, str(ds.PhotometricInterpretation), "RGB")
    return arr.reshape((n, int(ds.Rows), int(ds.Columns)) + ((3,) if spp == 3 else ()))


# ------------------------------------------------------------------ 2D images and masks
def read_image_2d(path: str | Path) -> Volume:
    """A PNG/JPEG/TIFF (or a single-frame DICOM) as a one-slice volume ``(I, J, 1[, C])``.

    ``i`` runs along an image row (x), ``j`` down the columns (y). A DICOM slice with position,
    orientation and spacing keeps its geometry; plain images and DICOM images without it (X-ray
    secondary captures, photos) get the identity affine (one unit per pixel) and
    ``meta["spacing_known"] = False``. Colour images keep RGB channels.
    """
    import cv2

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return _dicom_as_2d(path)
    if not path.is_file():
        raise DataError(f"no such image file. Received: path={str(path)!r}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot decode image {path}. Received: path={str(path)!r}")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = img[:, :, ::-1]  # BGR -> RGB
        array = np.ascontiguousarray(img.transpose(1, 0, 2))[:, :, None, :]
    else:
        array = np.ascontiguousarray(img.T)[:, :, None]
    return Volume(array, np.eye(4), source=str(path), meta={"spacing_known": False})


def _dicom_as_2d(path: Path) -> Volume:
    """A single-frame DICOM image; with its geometry when it has one, else in pixel units."""
    ds = _dcmread(path) if path.is_file() else None
    if ds is None or "PixelData" not in ds:
        raise DataError(f"not an image file (PNG/JPEG/TIFF or DICOM). "
                        f"Received: path={str(path)!r}")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"DICOM {path} has {ds.NumberOfFrames} frames, not one 2D image; read it "
                        f"with read_dicom or read_dicom_frames. Received: path={str(path)!r}")
    if all(k in ds for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")):
        return read_dicom(path)
    frame = read_dicom_frames(path)[0]
    if frame.ndim == 2:
        pixels = _modality_lut(ds, frame)
        array = np.ascontiguousarray(pixels.T)[:, :, None]
    else:
        array = np.ascontiguousarray(frame.transpose(1, 0, 2))[:, :, None, :]
    return Volume(array, np.eye(4), modality=str(ds.get("Modality", "")) or None,
                  patient_id=str(ds.get("PatientID", "")) or None, source=str(path),
                  meta={"spacing_known": False})


def read_mask_2d(path: str | Path) -> np.ndarray:
    """A PNG label mask as ``(I, J, 1)`` integers (grey levels are class indices).

    A colour PNG is accepted only when its three channels are equal.
    """
    import cv2

    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if img is None:
        raise DataError(f"cannot read mask {path}. Received: path={str(path)!r}")
    if img.ndim == 3:
        if not (np.array_equal(img[..., 0], img[..., 1])
                and np.array_equal(img[..., 0], img[..., 2])):
            raise DataError(f"mask {path} is a colour image; masks hold one class index per "
                            f"pixel. Received: shape {img.shape}")
        img = img[..., 0]
    return np.ascontiguousarray(img.T)[:, :, None]


def read_slice_pair(image: str | Path, mask: str | Path) -> tuple[Volume, Volume]:
    """A 2D image (PNG/JPEG or single-slice DICOM) and its PNG mask, on the same grid.

    The mask takes the image's affine (a PNG has no geometry of its own); their pixel grids must
    match exactly.
    """
    img = read_image_2d(image)
    labels = read_mask_2d(mask)
    if img.shape != labels.shape[:3]:
        raise DataError(f"mask {mask} is {labels.shape[0]}x{labels.shape[1]} pixels (width x "
                        f"height), its image {image} is {img.shape[0]}x{img.shape[1]}. Received: "
                        f"mask shape {labels.shape[0]}x{labels.shape[1]}")
    label_vol = img.with_array(labels, source=str(mask))
    check_label_matches(img, label_vol)
    return img, label_vol


def read_case(image: str | Path, label: str | Path | None = None) -> tuple[Volume, Volume | None]:
    """An image volume and (optionally) its label volume, checked to share shape and affine."""
    img = read_volume(image)
    if label is None:
        return img, None
    lab_path = Path(label)
    if lab_path.suffix.lower() in IMAGE_SUFFIXES:
        return read_slice_pair(image, label) if img.shape[2] == 1 else _mask_mismatch(img, label)
    lab = read_volume(lab_path)
    check_label_matches(img, lab)
    return img, lab


def _mask_mismatch(img: Volume, label) -> tuple[Volume, Volume]:
    raise DataError(f"label {label} is a 2D image but {img.source} is a volume of "
                    f"{img.shape[2]} slices. Received: label={str(label)!r}")
