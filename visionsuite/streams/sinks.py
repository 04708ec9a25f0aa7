"""Where stream results go: a window, an annotated video, JSON lines, image files.

Every sink is closed by the pipeline at the end of input, on Ctrl-C and on SIGTERM, so a saved
video is always playable (its index is written on close) and a results file always ends with
a complete line (each line is flushed as it is written).

* :class:`WindowSink` (``--show``): one window per source where OpenCV has a GUI and a display
  exists; otherwise one notice and the run continues headless. ``q`` in a window stops.
* :class:`VideoSink` (``--save out.mp4``): ``mp4v`` for ``.mp4``/``.mov``, ``MJPG`` for
  ``.avi``; for a video file source, the same frame count and fps as the input (divided by
  ``vid_stride``). Written to a ``.part`` file and renamed on close. Several sources write
  ``out_0.mp4``, ``out_1.mp4`` ...
* :class:`JsonlSink` (``--results out.jsonl``): one record per frame.
* :class:`FramesSink` (``--save-frames DIR``): annotated JPEGs ``<source>_<frame>.jpg``.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError

log = logging.getLogger("visionsuite.streams")

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class Sink(abc.ABC):
    """Receives every :class:`~visionsuite.streams.pipeline.StreamResult` of a run."""

    # (bool) whether the sink needs the annotated frame (``result.frame``)
    needs_frame: bool = True

    @abc.abstractmethod
    def write(self, result) -> None:
        """Handle one result (called from the pipeline's sink thread, in order per source)."""

    def close(self) -> None:
        """Flush and close; called once, also after an interruption."""


def gui_problem() -> str | None:
    """Why no window can be shown here, or ``None``."""
    import cv2

    info = cv2.getBuildInformation()
    gui = [line.split(":", 1)[1].strip() for line in info.splitlines()
           if line.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        return ("this OpenCV build has no GUI (opencv-python-headless); install a GUI build "
                "to use --show")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    return None


class WindowSink(Sink):
    """Shows annotated frames in a window per source.

    Args:
        on_quit: called when the user presses ``q`` or Esc in a window.
    """

    def __init__(self, on_quit: Callable[[], None] | None = None):
        self.on_quit = on_quit
        self.problem = gui_problem()
        self.enabled = self.problem is None
        if not self.enabled:
            log.warning("--show: %s; continuing without a window", self.problem)
        self._windows: set[str] = set()

    def write(self, result):
        if not self.enabled or result.frame is None:
            return
        import cv2

        title = f"visionsuite: {result.source}"
        try:
            cv2.imshow(title, result.frame)
            self._windows.add(title)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            self.enabled = False
            log.warning("--show: cannot open a window (%s); continuing without one",
                        str(exc).strip().splitlines()[-1][:120])
            return
        if key in (ord("q"), 27) and self.on_quit is not None:
            self.on_quit()

    def close(self):
        if self._windows:
            import cv2

            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


def video_paths(path: str | Path, n_sources: int) -> list[Path]:
    """The output file of each source: ``path`` itself for one source, ``stem_<i>`` else."""
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise UsageError(f"--save: unsupported video type {path.suffix or '(none)'!r}; use "
                         f"{', '.join(FOURCC)}. Received: save={path}")
    if n_sources == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n_sources)]


class VideoSink(Sink):
    """Writes annotated frames to a video file per source.

    Args:
        path: output file (``.mp4``, ``.mov``, ``.m4v``: mp4v; ``.avi``, ``.mkv``: MJPG).
        fps: frames per second of each source (``None``: 25).
    """

    def __init__(self, path: str | Path, fps: list[float | None]):
        self.paths = video_paths(path, len(fps))
        self.fps = [float(f) if f and f > 0 else 25.0 for f in fps]
        for p in self.paths:
            p.parent.mkdir(parents=True, exist_ok=True)
        self._writers: dict[int, tuple] = {}  # source id -> (writer, part path, (w, h))
        self.frames = [0] * len(fps)

    def _part(self, path: Path) -> Path:
        return path.with_name(f".{path.stem}.part{path.suffix}")

    def write(self, result):
        import cv2

        sid = result.source_id
        frame = result.frame
        if sid not in self._writers:
            h, w = frame.shape[:2]
            path = self.paths[sid]
            part = self._part(path)
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()])
            writer = cv2.VideoWriter(str(part), fourcc, self.fps[sid], (w, h))
            if not writer.isOpened():
                raise DataError(f"--save: cannot write video {path} (codec "
                                f"{FOURCC[path.suffix.lower()]})")
            self._writers[sid] = (writer, part, (w, h))
        writer, _, size = self._writers[sid]
        if frame.shape[1::-1] != size:  # image folders: frames of several sizes
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        writer.write(np.ascontiguousarray(frame))
        self.frames[sid] += 1

    def close(self):
        for sid, (writer, part, _) in sorted(self._writers.items()):
            writer.release()
            os.replace(part, self.paths[sid])
        self._writers.clear()


class JsonlSink(Sink):
    """One JSON object per line and per frame: ``source``, ``frame`` (index in its source),
    ``timestamp`` (s), ``latency_ms`` (capture to result), ``path`` (image sources) and
    ``result`` (the task's record). Each line is flushed as it is written."""

    needs_frame = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")
        self.lines = 0

    def write(self, result):
        self._file.write(json.dumps(result.to_json(), default=_jsonable) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self):
        if not self._file.closed:
            self._file.close()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class FramesSink(Sink):
    """Writes each annotated frame as ``DIR/<source>_<frame:06d>.jpg``, or, with
    ``by_stem``, image results as ``DIR/<image stem>.jpg`` (``predict --out``); atomically."""

    def __init__(self, folder: str | Path, by_stem: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.by_stem = by_stem
        self.frames = 0

    def write(self, result):
        import cv2

        from visionsuite.files import atomic_path

        if self.by_stem and result.path:
            path = self.folder / f"{Path(result.path).stem}.jpg"
        else:
            path = self.folder / f"{result.source_id}_{result.index:06d}.jpg"
        with atomic_path(path, keep_suffix=True) as tmp:
            if not cv2.imwrite(str(tmp), result.frame):
                raise DataError(f"--save-frames: cannot write {path}")
        self.frames += 1
