"""The medical task in the stream engine: volumes as sources, a sliding-window state, a NIfTI sink.

* :class:`VolumeSource` -- a NIfTI file, a DICOM file, a DICOM series folder, or a folder of
  NIfTI files: one :class:`~visionsuite.streams.sources.Frame` per volume, ``image`` the
  ``(D, H, W, C)`` float32 array in ``[i, j, k]`` voxel order and ``meta["affine"]`` its RAS+
  affine. The first volume is read when the source opens, so a bad input (missing geometry,
  mixed series, not a volume) fails at once, in one line.
* :class:`VolumeState` -- one volume in, windows out, one stitched label volume back. The
  :class:`~visionsuite_tasks.medical.inference.Stitcher` is made per volume when the first
  output arrives and travels in each tile's ``ctx`` (the engine merges tiles in push order),
  so memory is the stitcher's bound (one window of depth), not a buffer per tile.
* :class:`NiftiSink` -- writes ``<stem>_mask.nii.gz`` with the input's affine (and, with
  ``overlay``, the orthogonal-slice picture ``<stem>_overlay.png``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError
from visionsuite.streams.sinks import Sink
from visionsuite.streams.sources import Frame, Source
from visionsuite.streams.state import State

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def looks_like_dicom(path: Path) -> bool:
    """A ``.dcm`` file, or a file with the DICOM preamble (``DICM`` at byte 128)."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def claims(spec) -> bool:
    """Whether ``spec`` names a volume input: a NIfTI or DICOM file (existing or not, so a
    missing one fails with the volume reader's message), or a folder holding NIfTI or DICOM
    files (the first 64 files looked at)."""
    text = str(spec).strip()
    if not text or "://" in text or text.isdigit():
        return False
    path = Path(text)
    if is_nifti(path) or path.suffix.lower() == ".dcm":
        return True
    if path.is_file():
        return looks_like_dicom(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())[:64]
        return any(is_nifti(p) or looks_like_dicom(p) for p in files)
    return False


def stem_of(path) -> str:
    """The file name without ``.nii.gz`` / ``.nii`` / ``.dcm`` (a folder: its name)."""
    name = Path(str(path)).name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class VolumeSource(Source):
    """Volumes from a NIfTI file, a DICOM file or series folder, or a folder of NIfTI files.

    Args:
        spec: the path.
        source_id: position in the run's source list.
        series_uid: the series to read from a DICOM folder holding several.
    """

    kind = "volumes"

    def __init__(self, spec, source_id: int = 0, series_uid: str | None = None):
        super().__init__(str(spec), source_id)
        self.series_uid = series_uid
        self.path = Path(str(spec).strip())
        self.items: list[Path] = []
        self._first = None

    def open(self):
        from visionsuite_tasks.medical.readers import read_volume

        if not self.path.exists():
            raise DataError(f"no such volume file or folder. Received: source={self.name!r}")
        if self.path.is_dir():
            niftis = sorted(p for p in self.path.iterdir() if p.is_file() and is_nifti(p))
            self.items = niftis or [self.path]  # a folder without NIfTI files: a DICOM series
        else:
            self.items = [self.path]
        # refuses bad geometry (missing, mixed series) in one line, before anything runs
        self._first = read_volume(self.items[0], series_uid=self.series_uid)
        self._check(self._first)
        self.total = len(self.items)
        return self

    def _check(self, volume):
        if min(volume.shape) < 2:
            raise DataError(f"{volume.source or self.name} is a single slice "
                            f"{volume.shape}, not a volume. Received: shape {volume.shape}")

    def frames(self, stop):
        from visionsuite_tasks.medical.readers import read_volume

        for i, item in enumerate(self.items):
            if stop.is_set():
                break
            if i == 0:
                volume, self._first = self._first, None
            else:
                try:
                    volume = read_volume(item, series_uid=self.series_uid)
                    self._check(volume)
                except DataError as exc:
                    self.counts["skipped"] += 1
                    import logging

                    logging.getLogger("visionsuite.streams").warning("%s: skipped %s",
                                                                     self.name, exc)
                    continue
            self.counts["frames"] += 1
            meta = {"affine": volume.affine, "modality": volume.modality}
            yield Frame(self.source_id, i, 0.0, time.perf_counter(), volume.to_dhwc(),
                        str(item), meta=meta)


def grid_like(shape, affine):
    """A :class:`Volume` carrying only a grid (a broadcast zero array: no memory)."""
    from visionsuite_tasks.medical.volume import Volume

    return Volume(np.broadcast_to(np.uint8(0), tuple(int(s) for s in shape)), affine)


class VolumeState(State):
    """One volume -> preprocessed by the task -> sliding windows -> labels on the input grid.

    ``push`` takes the whole ``(D, H, W, C)`` volume with ``meta["affine"]`` (identity when
    absent); ``merge`` returns ``None`` until the volume's last window is in.

    Args:
        overlap: fraction of a window shared with its neighbour.
    """

    frame_drops = False
    input_drops = False

    def __init__(self, task, source, spec, classes, overlap: float = 0.5):
        super().__init__(task, source, spec, classes)
        from visionsuite_tasks.medical.inference import SlidingWindow

        self.window = SlidingWindow(spec.shape[:3], overlap=overlap)

    def push(self, item, meta):
        from visionsuite_tasks.medical.volume import Volume

        item = np.asarray(item, np.float32)
        if item.ndim != 4:
            raise DataError(f"a volume state takes (D, H, W, C) volumes. Received: shape "
                            f"{item.shape}")
        affine = np.asarray(meta.get("affine", np.eye(4)), np.float64)
        volume = Volume(item[..., 0] if item.shape[-1] == 1 else item, affine)
        work, array = self.task.prepare(volume, self.spec)
        job = {"work": grid_like(work.shape, work.affine),
               "input": grid_like(volume.shape, volume.affine), "stitcher": None}
        for tile_input, tile in self.window.tiles(array):
            yield tile_input, dict(meta, tile=tile, job=job)

    def merge(self, outputs, ctx):
        job = ctx["job"]
        p = np.asarray(outputs["probabilities"], np.float32)
        if job["stitcher"] is None:
            job["stitcher"] = self.window.stitcher(
                job["work"].shape, num_classes=p.shape[-1], output="labels",
                threshold=getattr(self.task.config, "threshold", 0.5))
        stitcher = job["stitcher"]
        stitcher.push(ctx["tile"], p)
        if not stitcher.done:
            return None
        from visionsuite_tasks.medical import preprocess

        labels = stitcher.result()
        back = preprocess.resample_like(job["work"].with_array(labels), job["input"], order=0)
        meta = {k: v for k, v in ctx.items() if k not in ("tile", "job")}
        meta["affine"] = job["input"].affine
        return self.task.postprocess({"labels": back.array}, meta, self.classes)


class NiftiSink(Sink):
    """Writes each predicted label volume as ``folder/<stem>_mask.nii.gz`` with the input's
    affine, and adds the file to the record as ``"mask"``; with ``overlay``, also the
    orthogonal-slice picture as ``<stem>_overlay.png`` (``"overlay"``).

    Args:
        folder: the output folder (created).
        overlay: also write the picture (the engine then renders each result).
    """

    def __init__(self, folder, overlay: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.overlay = bool(overlay)
        self.needs_frame = self.overlay
        self.written = 0

    def write(self, result) -> None:
        from visionsuite_tasks.medical.readers import write_nifti
        from visionsuite_tasks.medical.volume import Volume

        prediction = result.prediction
        stem = stem_of(result.path) if result.path else \
            f"{stem_of(result.source) or 'volume'}_{int(result.index):06d}"
        path = self.folder / f"{stem}_mask.nii.gz"
        write_nifti(Volume(prediction.labels, prediction.affine), path)
        result.record["mask"] = str(path)
        if self.overlay and result.frame is not None and result.frame.ndim == 3:
            import cv2

            from visionsuite.files import write_bytes_atomic

            ok, data = cv2.imencode(".png", result.frame)
            if ok:
                png = write_bytes_atomic(self.folder / f"{stem}_overlay.png", data.tobytes())
                result.record["overlay"] = str(png)
        self.written += 1
