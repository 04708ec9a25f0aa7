"""Clip data: video datasets, clip sampling, frame decoding by position, clip augmentation.

Datasets (:func:`load_video_dataset`, returns a :class:`visionsuite.task.Dataset` whose
samples hold a :class:`VideoRef` and a class index):

* ``folders`` -- ``root/[split/]<class>/<video file>``; a sub-folder of images in a class
  folder is a video given as frames (``root/<class>/<clip>/000001.jpg ...``, sorted by name);
* ``csv`` -- a manifest ``video,label[,start,end]`` (header optional; ``video`` relative to
  the CSV's folder; ``start`` / ``end`` in frames, ``end`` exclusive, or in seconds with
  ``time_unit="seconds"``): trimmed segments of untrimmed videos.

Unreadable videos, videos shorter than ``min_frames`` and segments beyond a video's end are
skipped and reported in ``Dataset.skipped`` (with ``strict=True`` the first one raises a
:class:`~visionsuite.errors.DataError`).

Sampling: :func:`tsn_indices` (``T`` uniform segments; a random frame in each when training,
the centre frame when evaluating -- TSN) and :func:`dense_windows` (every ``stride`` frames a
window of ``T`` consecutive frames, for streams and untrimmed evaluation).

Decoding: :func:`read_frames` decodes only the requested frames. OpenCV is asked to seek
(``CAP_PROP_POS_FRAMES``) for jumps and steps with ``grab()`` over short gaps. Whether seeking
lands on the exact frame is checked once per file (:func:`seek_is_exact`: a seeked frame
against the same frame reached by stepping); where it is not, the reader steps from the start.
Frame-accurate seeking was measured exact with OpenCV 5.0's FFmpeg backend on mp4v (.mp4) and
MJPG (.avi) files written by ``cv2.VideoWriter`` (see tests/test_clips.py).

Augmentation: :func:`clip_transform` is an Albumentations ``Compose`` whose
``additional_targets`` make every frame of a clip get the *same* sampled crop, flip and
colour change (:func:`transform_clip` applies it to a ``(T, H, W, 3)`` array).
Horizontal flips are off by default: they turn "moving left" into "moving right".
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionsuite.data.images import is_image_file, list_images, read_image, warn_skipped
from visionsuite.data.readers import read_csv_rows, resolve_split, subfolders
from visionsuite.errors import DataError, UsageError
from visionsuite.task import Dataset, Sample

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
FORMATS = ("folders", "csv")
# Gaps up to this many frames are crossed with grab() instead of a seek.
STEP_LIMIT = 8


@dataclasses.dataclass(frozen=True)
class VideoRef:
    """Where a clip's frames come from.

    Args:
        path: a video file, or a folder of frame images (``kind="frames"``).
        start: first frame of the segment (inclusive).
        end: end of the segment (exclusive).
        fps: frames per second of the source (``0.0`` when unknown, e.g. frame folders).
        kind: ``"video"`` or ``"frames"``.
    """

    path: str
    start: int
    end: int
    fps: float = 0.0
    kind: str = "video"

    @property
    def num_frames(self) -> int:
        """Frames in the segment."""
        return self.end - self.start


# ============================================================================ probing


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def probe_video(path: str | Path) -> tuple[int, float, tuple[int, int]]:
    """``(frame_count, fps, (height, width))`` of a video file, from its header.

    Raises :class:`DataError` when OpenCV cannot open or decode it.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot read video {path}: OpenCV cannot open it")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise DataError(f"cannot read video {path}: no decodable frame")
        if count <= 0:  # header without a count: count by stepping (no decoding)
            count = 1
            while cap.grab():
                count += 1
        return count, fps, frame.shape[:2]
    finally:
        cap.release()


def _frame_files(folder: Path) -> list[Path]:
    files, _ = list_images(folder, verify=False)
    return files


# ============================================================================ datasets


def _video_ref(path: Path, start=None, end=None, time_unit="frames") -> VideoRef:
    """A checked reference to (a segment of) a video file or a folder of frames."""
    if path.is_dir():
        count, fps, kind = len(_frame_files(path)), 0.0, "frames"
        if count == 0:
            raise DataError(f"{path}: no frame images in the folder")
    else:
        count, fps, _ = probe_video(path)
        kind = "video"
    scale = 1.0
    if time_unit == "seconds":
        if fps <= 0:
            raise DataError(f"{path}: segment times in seconds need a frame rate; this source "
                            f"has none. Received: time_unit='seconds'")
        scale = fps
    s = 0 if start in (None, "") else int(round(float(start) * scale))
    e = count if end in (None, "") else int(round(float(end) * scale))
    if s < 0 or e <= s:
        raise DataError(f"{path}: empty or negative segment. Received: start={start}, end={end}")
    if e > count:
        raise DataError(f"{path}: segment ends at frame {e}, beyond the video's {count} frames. "
                        f"Received: start={start}, end={end}")
    return VideoRef(str(path), s, e, fps, kind)


def _check_length(ref: VideoRef, min_frames: int) -> None:
    if ref.num_frames < min_frames:
        raise DataError(f"{ref.path}: {ref.num_frames} frame(s), shorter than a clip of "
                        f"{min_frames}. Received: min_frames={min_frames}")


def _add(samples, skipped, strict, item, make):
    try:
        samples.append(make())
    except DataError as exc:
        if strict:
            raise
        skipped.append((str(item), str(exc)))


def load_video_dataset(path: str | Path, *, split: str | None = None, format: str | None = None,
                       strict: bool = False, classes: Sequence[str] | None = None,
                       min_frames: int = 1, time_unit: str = "frames") -> Dataset:
    """Read a video dataset (see the module docstring for the two formats).

    Args:
        path: a dataset folder (``folders``; with optional ``train/ val/ test/``) or a CSV
            manifest (``csv``; a folder holding ``<split>.csv`` also works).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``.
        format: ``"folders"`` or ``"csv"``; default: ``csv`` for a ``.csv`` path.
        strict: raise at the first unreadable / too short / out-of-range item instead of
            skipping it.
        classes: fixed class order (e.g. the model's); items of other classes raise.
        min_frames: videos / segments with fewer frames are skipped (the clip length when
            sampling dense windows; TSN sampling repeats frames of shorter videos).
        time_unit: ``"frames"`` or ``"seconds"`` for a CSV's start / end.

    Returns:
        ``Dataset(classes, samples, skipped)``; each ``Sample.image`` is a :class:`VideoRef`
        and ``Sample.target`` the class index.
    """
    path = Path(path)
    if time_unit not in ("frames", "seconds"):
        raise UsageError(f"time_unit must be 'frames' or 'seconds'. Received: time_unit={time_unit!r}")
    if format is None:
        format = "csv" if path.suffix.lower() == ".csv" or (
            split and (path / f"{split}.csv").is_file()) else "folders"
    if format not in FORMATS:
        raise UsageError(f"video dataset format must be one of {FORMATS}. Received: format={format!r}")
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    if format == "csv":
        csv_path = path / f"{split}.csv" if path.is_dir() and split else path
        try:  # video,label,start,end (header optional), else video,label
            rows = read_csv_rows(csv_path, ("video", "label", "start", "end"))
        except DataError:
            rows = read_csv_rows(csv_path, ("video", "label"))
        names = list(classes) if classes is not None else sorted({r["label"] for _, r in rows})
        index = {n: i for i, n in enumerate(names)}
        for lineno, row in rows:
            if row["label"] not in index:
                raise DataError(f"{csv_path}, line {lineno}: label {row['label']!r} is not one "
                                f"of the classes {names}. Received: {row['label']!r}")
            video = Path(row["video"])
            video = video if video.is_absolute() else csv_path.parent / video

            def make(video=video, row=row, lineno=lineno):
                try:
                    ref = _video_ref(video, row.get("start"), row.get("end"), time_unit)
                    _check_length(ref, min_frames)
                except DataError as exc:
                    raise DataError(f"{csv_path}, line {lineno}: {exc}") from exc
                return Sample(ref, index[row["label"]], f"{video}[{ref.start}:{ref.end}]")

            _add(samples, skipped, strict, f"{csv_path}:{lineno}", make)
    else:
        root = resolve_split(path, split)
        folders = subfolders(root)
        if not folders:
            raise DataError(f"{root}: expected one sub-folder of videos per class")
        found = [f.name for f in folders]
        names = list(classes) if classes is not None else found
        unknown = [n for n in found if n not in names]
        if unknown:
            raise DataError(f"{root}: class folder(s) {unknown} are not among the classes "
                            f"{names}. Received: {found}")
        for folder in folders:
            label = names.index(folder.name)
            for item in sorted(folder.iterdir()):
                if item.name.startswith("."):
                    continue
                is_frames = item.is_dir() and any(is_image_file(p) for p in item.iterdir())
                if not is_frames and not (item.is_file() and is_video_file(item)):
                    continue

                def make(item=item, label=label):
                    ref = _video_ref(item)
                    _check_length(ref, min_frames)
                    return Sample(ref, label, str(item))

                _add(samples, skipped, strict, item, make)
    if not samples:
        reasons = f" (skipped: {skipped[0][1]})" if skipped else ""
        raise DataError(f"no readable videos in {path}{reasons}")
    warn_skipped(skipped, f"video dataset {path}")
    return Dataset(classes=names, samples=samples, skipped=skipped)


# ============================================================================ sampling


def tsn_indices(num_frames: int, segments: int, *, training: bool,
                rng: np.random.Generator | None = None, start: int = 0) -> np.ndarray:
    """TSN sampling: one frame from each of ``segments`` equal parts of ``num_frames``.

    Training takes a random frame inside each part (``rng``), evaluation its centre.
    Shorter videos repeat frames (the parts are shorter than a frame). Returns absolute
    frame indices (``start`` added), non-decreasing.
    """
    if num_frames < 1 or segments < 1:
        raise DataError(f"TSN sampling needs frames and segments >= 1. Received: "
                        f"num_frames={num_frames}, segments={segments}")
    edges = np.linspace(0.0, num_frames, segments + 1)
    if training:
        rng = rng or np.random.default_rng()
        pos = edges[:-1] + rng.random(segments) * (edges[1:] - edges[:-1])
    else:
        pos = (edges[:-1] + edges[1:]) / 2.0
    return start + np.minimum(np.floor(pos).astype(np.int64), num_frames - 1)


def dense_windows(num_frames: int, window: int, stride: int, *, start: int = 0) -> np.ndarray:
    """Windows of ``window`` consecutive frames every ``stride`` frames: ``(n, window)``
    absolute indices. A video shorter than one window raises :class:`DataError`."""
    if window < 1 or stride < 1:
        raise UsageError(f"window and stride must be >= 1. Received: window={window}, stride={stride}")
    if num_frames < window:
        raise DataError(f"a video of {num_frames} frame(s) is shorter than a window of "
                        f"{window}. Received: num_frames={num_frames}")
    starts = np.arange(0, num_frames - window + 1, stride)
    return start + starts[:, None] + np.arange(window)[None, :]


# ============================================================================ decoding


def _grab_to(cap, current: int, target: int) -> int:
    while current < target:
        if not cap.grab():
            raise DataError(f"video ended before frame {target}")
        current += 1
    return current


@functools.lru_cache(maxsize=4096)
def _seek_exact_cached(path: str, mtime_ns: int, size: int) -> bool:
    import cv2

    count, _, _ = probe_video(path)
    target = min(count - 1, 2 * STEP_LIMIT + 5)  # past the first keyframe interval of small GOPs
    if target < 1:
        return True
    cap = cv2.VideoCapture(path)
    try:
        ok = cap.set(cv2.CAP_PROP_POS_FRAMES, target)
        ok_read, seeked = cap.read()
        if not (ok and ok_read):
            return False
    finally:
        cap.release()
    cap = cv2.VideoCapture(path)
    try:
        _grab_to(cap, 0, target)
        ok_read, stepped = cap.read()
    finally:
        cap.release()
    return bool(ok_read) and np.array_equal(seeked, stepped)


def seek_is_exact(path: str | Path) -> bool:
    """Whether seeking with ``CAP_PROP_POS_FRAMES`` lands on the exact frame in this file
    (a seeked frame compared with the same frame reached by ``grab()``; cached per file)."""
    st = os.stat(path)
    return _seek_exact_cached(str(path), st.st_mtime_ns, st.st_size)


def read_frames(source: VideoRef | str | Path, indices: Sequence[int], *,
                seek: bool | None = None) -> np.ndarray:
    """Decode the frames at ``indices`` (absolute, any order, repeats allowed) as RGB uint8
    ``(len(indices), H, W, 3)``, without reading the rest of the video.

    Args:
        source: a :class:`VideoRef`, a video file or a folder of frame images.
        indices: frame numbers to return, in the order wanted.
        seek: ``True`` seek for jumps, ``False`` only step with ``grab()``; ``None`` (default)
            seeks where :func:`seek_is_exact` holds for the file.
    """
    import cv2

    if isinstance(source, VideoRef):
        path, kind = Path(source.path), source.kind
    else:
        path = Path(source)
        kind = "frames" if path.is_dir() else "video"
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise UsageError(f"read_frames needs at least one index. Received: indices={list(indices)}")
    if idx.min() < 0:
        raise DataError(f"{path}: negative frame index. Received: {int(idx.min())}")
    wanted = sorted(set(int(i) for i in idx))
    frames: dict[int, np.ndarray] = {}
    if kind == "frames":
        files = _frame_files(path)
        if wanted[-1] >= len(files):
            raise DataError(f"{path}: frame {wanted[-1]} requested, the folder has "
                            f"{len(files)} frames. Received: indices up to {wanted[-1]}")
        for i in wanted:
            frames[i] = read_image(files[i])
    else:
        if not path.is_file():
            raise DataError(f"video not found: {path}")
        use_seek = seek_is_exact(path) if seek is None else bool(seek)
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise DataError(f"cannot read video {path}: OpenCV cannot open it")
            pos = 0  # index of the frame the next read() returns
            for i in wanted:
                if use_seek and i - pos > STEP_LIMIT:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                    pos = i
                else:
                    try:
                        pos = _grab_to(cap, pos, i)
                    except DataError as exc:
                        raise DataError(f"{path}: {exc}. Received: frame {i}") from exc
                ok, frame = cap.read()
                if not ok or frame is None:
                    raise DataError(f"{path}: cannot decode frame {i} (beyond the end or a "
                                    f"corrupt frame). Received: frame {i}")
                frames[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                pos = i + 1
        finally:
            cap.release()
    return np.stack([frames[int(i)] for i in idx])


def sample_clip(ref: VideoRef, frames: int, *, training: bool,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """A TSN clip of ``frames`` frames from a dataset item: ``(frames, H, W, 3)`` uint8."""
    return read_frames(ref, tsn_indices(ref.num_frames, frames, training=training, rng=rng,
                                        start=ref.start))


# ============================================================================ augmentation


def _targets(frames: int) -> dict[str, str]:
    return {f"image{i}": "image" for i in range(1, int(frames))}


def clip_transform(frames: int, size: int | tuple[int, int], *, training: bool,
                   strength: float = 0.5, hflip: bool = False, color_jitter: bool = True,
                   affine: bool = False, seed: int | None = None):
    """An Albumentations ``Compose`` that transforms all ``frames`` frames of a clip alike.

    Inputs ``image`` (frame 0), ``image1`` ... ``image{frames-1}`` (see :func:`clip_inputs`);
    one crop / flip / colour change / affine is sampled per call and applied to every
    frame. Training: :func:`visionsuite.data.augment.train_transform` (random resized crop,
    colour jitter, optional flip and affine); evaluation: a resize. ``size`` is the side of
    the square output (non-square sizes resize only).
    """
    from visionsuite.data.augment import eval_transform, train_transform

    if int(frames) < 1:
        raise UsageError(f"frames must be >= 1. Received: frames={frames!r}")
    kwargs: dict[str, Any] = {"additional_targets": _targets(frames)}
    if seed is not None:
        kwargs["seed"] = int(seed)
    if isinstance(size, (tuple, list)):
        import albumentations as A
        import cv2

        return A.Compose([A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_AREA)],
                         **kwargs)
    if training:
        return train_transform(int(size), strength=strength, hflip=hflip,
                               color_jitter=color_jitter, affine=affine, **kwargs)
    return eval_transform(int(size), **kwargs)


def clip_inputs(clip: np.ndarray) -> dict[str, np.ndarray]:
    """``(T, H, W, 3)`` -> ``{"image": frame 0, "image1": frame 1, ...}`` for
    :func:`clip_transform`."""
    return {("image" if i == 0 else f"image{i}"): np.ascontiguousarray(f)
            for i, f in enumerate(clip)}


def clip_outputs(outputs: dict[str, np.ndarray], frames: int) -> np.ndarray:
    """The transformed frames back as ``(T, H, W, 3)``."""
    return np.stack([outputs["image" if i == 0 else f"image{i}"] for i in range(int(frames))])


def transform_clip(transform, clip: np.ndarray) -> np.ndarray:
    """Apply a :func:`clip_transform` to a ``(T, H, W, 3)`` clip."""
    clip = np.asarray(clip)
    if clip.ndim != 4:
        raise DataError(f"a clip is (frames, height, width, 3). Received: shape {clip.shape}")
    return clip_outputs(transform(**clip_inputs(clip)), len(clip))


def dense_clip_indices(num_frames: int, frames: int, *, training: bool,
                       rng: np.random.Generator | None = None, start: int = 0) -> np.ndarray:
    """``frames`` consecutive frames: a random window when training, the centre window when
    evaluating (the temporal scale a streaming model sees live). A segment shorter than
    ``frames`` raises :class:`DataError`."""
    if num_frames < frames:
        raise DataError(f"a segment of {num_frames} frame(s) is shorter than a clip of "
                        f"{frames}. Received: num_frames={num_frames}")
    last = num_frames - frames
    first = int((rng or np.random.default_rng()).integers(0, last + 1)) if training else last // 2
    return start + first + np.arange(frames)


SAMPLINGS = {"tsn": tsn_indices, "dense": dense_clip_indices}


class ClipLoader:
    """``load(sample)`` for :func:`visionsuite.data.pipeline.make_tf_dataset`: decodes a clip
    of ``frames`` frames from a :class:`VideoRef` sample and returns the inputs of a
    :func:`clip_transform` (``image``, ``image1``, ...). Use :meth:`to_arrays` as the
    pipeline's ``to_arrays`` (``(clip (T, H, W, 3), label)``).

    Args:
        frames: clip length ``T``.
        training: random offsets (a new draw per call) instead of centred ones.
        sampling: ``"tsn"`` (:func:`tsn_indices`: ``T`` segments spanning the video, for
            clip models) or ``"dense"`` (:func:`dense_clip_indices`: ``T`` consecutive
            frames, for streaming models, which see every frame live).
        seed: seeds the offsets (draws from parallel pipeline workers interleave, so the
            order of draws -- not their distribution -- depends on thread timing).

    Example:
        >>> loader = ClipLoader(8, training=True)
        >>> ds = make_tf_dataset(dataset, output_signature=(TensorSpec((8, 96, 96, 3)),
        ...     TensorSpec((), "int32")), batch_size=8, training=True, load=loader,
        ...     transform=clip_transform(8, 96, training=True), to_arrays=loader.to_arrays)
    """

    def __init__(self, frames: int, *, training: bool, sampling: str = "tsn", seed: int = 0):
        if sampling not in SAMPLINGS:
            raise UsageError(f"sampling must be one of {sorted(SAMPLINGS)}. "
                             f"Received: sampling={sampling!r}")
        self.frames = int(frames)
        self.training = bool(training)
        self.sampling = sampling
        self._rng = np.random.default_rng(seed)

    def indices(self, ref: VideoRef) -> np.ndarray:
        """Absolute frame indices of the next clip drawn from ``ref``."""
        return SAMPLINGS[self.sampling](ref.num_frames, self.frames, training=self.training,
                                        rng=self._rng, start=ref.start)

    def __call__(self, sample: Sample) -> dict[str, np.ndarray]:
        return clip_inputs(read_frames(sample.image, self.indices(sample.image)))

    def to_arrays(self, outputs: dict[str, np.ndarray], sample: Sample) -> tuple:
        return clip_outputs(outputs, self.frames), np.asarray(sample.target)
