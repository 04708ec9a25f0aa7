"""Frame sources: a webcam, a video file, a network stream (URL), an image folder or glob.

Each source is opened in the caller's thread -- so a bad source fails at once, with one line --
and then read in its own thread by the pipeline (:mod:`visionsuite.streams.pipeline`), which
applies the drop policy: live sources (cameras, URLs) keep only the newest frame by default,
files and image folders never drop a frame.

``vid_stride=N`` decodes every Nth frame of a video and only grabs the others (cheap). URL
sources are opened with a timeout (OpenCV's FFmpeg open/read timeouts, plus a watchdog so a
stuck open never hangs the run) and reconnect with bounded exponential backoff when the stream
drops. Passwords in URLs never appear in messages: ``rtsp://user:***@host/...``.

Example:
    >>> source = open_source("rtsp://cam.local/stream", timeout=5.0)
    >>> for frame in source.frames(threading.Event()):
    ...     print(frame.index, frame.image.shape)
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from visionsuite.errors import DataError, UsageError

log = logging.getLogger("visionsuite.streams")

# URL schemes read through OpenCV's FFmpeg backend.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
POLICIES = ("newest", "queue")
# Reconnection defaults: waits 0.5, 1, 1.5, 1.5 ... s, 12 attempts: an outage of up to about
# 16 s is survived, a server that comes back is found within about 1.5 s (plus ~0.2 s to open
# the stream), and a dead server sees one refused connection every 1.5 s.
RECONNECT = 12
RECONNECT_DELAY_MAX = 1.5

# A URL inside any text: scheme "://" then everything up to white space or a quote.
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s'\"<>]*)")
# Query parameters that carry credentials (IP cameras: ``video.cgi?user=admin&pwd=...``).
_SECRET_PARAM = re.compile(r"(?i)(?P<key>(?:^|[?&;])(?:password|passwd|pass|pwd|token|"
                           r"access_token|auth|key|secret|signature|sig)=)[^&;#]*")


def _mask_one(m: re.Match) -> str:
    rest = m.group("rest")
    # The authority ends at the first "/", "?" or "#"; its user info ends at the *last* "@"
    # (an unencoded "@" in a password stays in the user info, as FFmpeg reads it too). A
    # "/" in a password is not URL syntax either, so when a later "@" exists and a ":"
    # precedes it before any "/", the whole span up to that "@" is masked.
    end = len(rest)
    for sep in "/?#":
        k = rest.find(sep)
        if k >= 0:
            end = min(end, k)
    at = rest.rfind("@", 0, end)
    if at < 0:
        later = rest.rfind("@")
        colon = rest.find(":")
        if later >= 0 and 0 <= colon < later and colon < end:
            at = later
    if at >= 0:
        userinfo, tail = rest[:at], rest[at:]
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            rest = f"{user}:***{tail}"
    return m.group("scheme") + _SECRET_PARAM.sub(lambda q: q.group("key") + "***", rest)


def mask_url(text: str) -> str:
    """Mask the credentials of every URL in ``text``: the password of the user info
    (``rtsp://user:secret@h`` -> ``rtsp://user:***@h``, also with an empty user name or an
    ``@`` inside the password) and credential query parameters (``?pwd=***``)."""
    return _URL.sub(_mask_one, str(text))


@dataclasses.dataclass
class Frame:
    """One captured frame."""

    # (int) position of the source in the run's source list
    source_id: int
    # (int) frame index in its source (counting every frame, also those skipped by vid_stride)
    index: int
    # (float) seconds: position in a video file, Unix time for live sources, 0 for images
    timestamp: float
    # (float) time.perf_counter() when the frame was decoded: capture-to-result latency starts here
    captured: float
    # (np.ndarray) BGR uint8 (H, W, 3); a task's own source (Task.open_source) may give
    # other arrays its state takes, e.g. a (D, H, W, C) volume
    image: np.ndarray
    # (str | None) the image file, for folder and glob sources
    path: str | None = None
    # (int) how many times the source had reconnected when the frame was read: the stream
    # engine starts a fresh per-source state when it changes
    segment: int = 0
    # (dict) more about the item from a task's own source (e.g. a volume's affine); merged
    # into the meta the per-source state's push receives
    meta: dict = dataclasses.field(default_factory=dict)


class Source(abc.ABC):
    """A source of frames. ``open()`` validates it; ``frames(stop)`` yields :class:`Frame`.

    Attributes:
        name: how the source appears in messages and results (passwords masked).
        live: live sources drop frames under the "newest" policy; files never do.
        fps: frames per second of the delivered frames (after ``vid_stride``), if known.
        total: number of frames that will be delivered, if known (files, folders).
        counts: ``frames``, ``skipped`` (unreadable images), ``outages`` and ``outage_s``
            (URL reconnects), ``failed`` (a stream given up).
    """

    kind: str = "source"
    live: bool = False

    def __init__(self, name: str, source_id: int = 0):
        self.name = mask_url(name)
        self.source_id = source_id
        self.fps: float | None = None
        self.total: int | None = None
        self.counts = {"frames": 0, "skipped": 0, "outages": 0, "outage_s": 0.0, "failed": 0}

    @abc.abstractmethod
    def open(self) -> "Source":
        """Open the source; raise :class:`DataError` with one line when it cannot be read."""

    @abc.abstractmethod
    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames until the end of input or until ``stop`` is set."""

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "live": self.live, "fps": self.fps,
                "total": self.total, **self.counts}


class _CaptureSource(Source):
    """Common reading loop of OpenCV ``VideoCapture`` sources (grab / retrieve with stride)."""

    def __init__(self, name, source_id=0, vid_stride=1):
        super().__init__(name, source_id)
        if int(vid_stride) < 1:
            raise UsageError(f"vid_stride must be >= 1. Received: vid_stride={vid_stride}")
        self.vid_stride = int(vid_stride)
        self.cap = None
        self._first = None  # the frame read by open() to prove the source works
        self._index = 0

    def _read(self):
        """Next delivered frame (index, image) or None at the end; grabs skipped frames."""
        while True:
            index = self._index
            self._index += 1
            if index % self.vid_stride:
                if not self.cap.grab():
                    return None
                continue
            ok, image = self.cap.read()
            if not ok or image is None:
                return None
            return index, image

    def _timestamp(self, index: int) -> float:
        return time.time()

    def _make(self, index, image) -> Frame:
        self.counts["frames"] += 1
        return Frame(self.source_id, index, self._timestamp(index), time.perf_counter(), image,
                     segment=self.counts["outages"])

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class VideoFileSource(_CaptureSource):
    """A video file (anything OpenCV's FFmpeg backend decodes). Never drops frames.

    Args:
        path: the video file.
        source_id: position in the run's source list.
        vid_stride: decode every Nth frame (the others are only grabbed).
    """

    kind = "file"

    def __init__(self, path, source_id=0, vid_stride=1):
        super().__init__(str(path), source_id, vid_stride)
        self.path = Path(path)
        self._native_fps = 25.0
        self._count = 0

    def open(self):
        import cv2

        if not self.path.exists():
            raise DataError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise DataError(f"not a video file: {self.path}")
        if self.path.stat().st_size == 0:
            raise DataError(f"cannot read video {self.path}: empty file")
        self.cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.close()
            raise DataError(f"cannot open video {self.path}: corrupt, truncated or not a video "
                            f"OpenCV can decode")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self._native_fps = fps if fps and 0 < fps < 1000 else 25.0
        self._count = max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        first = self._read()
        if first is None:
            self.close()
            raise DataError(f"cannot read video {self.path}: it has no frames "
                            f"(zero-frame, corrupt or truncated file)")
        self._first = first
        self.fps = self._native_fps / self.vid_stride
        self.total = -(-self._count // self.vid_stride) if self._count else None
        return self

    def _timestamp(self, index):
        return index / self._native_fps

    def frames(self, stop):
        if self._first is not None:
            first, self._first = self._first, None
            yield self._make(*first)
        while not stop.is_set():
            item = self._read()
            if item is None:
                break
            yield self._make(*item)
        read = self._index - 1
        if self._count and not stop.is_set() and read < self._count * 0.98 - 1:
            log.warning("%s: the video ended after %d of %d frames (truncated?)", self.name,
                        read, self._count)
        self.close()


class CameraSource(_CaptureSource):
    """A camera by index (``--source 0``). Live: the pipeline keeps only the newest frame.

    Args:
        index: OpenCV camera index.
        max_failures: consecutive failed reads before the camera is given up.
    """

    kind = "camera"
    live = True

    def __init__(self, index: int, source_id=0, vid_stride=1, max_failures: int = 20):
        super().__init__(f"camera {index}", source_id, vid_stride)
        self.index = int(index)
        self.max_failures = max_failures

    def open(self):
        import cv2

        self.cap = cv2.VideoCapture(self.index)
        ok = self.cap.isOpened()
        first = self._read() if ok else None
        if first is None:
            self.close()
            raise DataError(f"camera {self.index} cannot be opened (no such device, no "
                            f"permission, or in use). Received: source={self.index}")
        self._first = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = (fps if fps and 0 < fps < 1000 else 30.0) / self.vid_stride
        return self

    def frames(self, stop):
        if self._first is not None:
            first, self._first = self._first, None
            yield self._make(*first)
        failures = 0
        while not stop.is_set():
            item = self._read()
            if item is None:
                failures += 1
                if failures >= self.max_failures:
                    log.warning("%s: no frames after %d tries; stopping this source",
                                self.name, failures)
                    self.counts["failed"] += 1
                    break
                stop.wait(0.05)
                continue
            failures = 0
            yield self._make(*item)
        self.close()


class URLSource(_CaptureSource):
    """A network stream (rtsp, http(s), udp, ...) read through OpenCV's FFmpeg backend.

    Live: the pipeline keeps only the newest frame by default. When the stream drops, the
    source reconnects with exponential backoff (``reconnect_delay`` doubling up to
    ``reconnect_delay_max``), ``reconnect`` times at most, reports the outage and carries on;
    after the last failed attempt it ends (the other sources continue).

    FFmpeg demuxer options come from OpenCV's ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` environment
    variable, e.g. ``rtsp_transport;tcp`` for cameras that drop UDP packets. The end of an
    HTTP stream counts as an outage too (a live stream cannot tell it from a drop).

    Args:
        url: the stream URL.
        timeout: seconds to open the stream and to wait for a frame.
        reconnect: reconnection attempts per outage (0 = end at the first drop).
        reconnect_delay: first wait before reconnecting, in seconds.
        reconnect_delay_max: longest wait between attempts, in seconds.
    """

    kind = "url"
    live = True

    def __init__(self, url: str, source_id=0, vid_stride=1, timeout: float = 10.0,
                 reconnect: int = RECONNECT, reconnect_delay: float = 0.5,
                 reconnect_delay_max: float = RECONNECT_DELAY_MAX):
        super().__init__(url, source_id, vid_stride)
        self.url = url
        scheme = urlsplit(url).scheme.lower()
        if scheme not in URL_SCHEMES:
            raise UsageError(f"unsupported URL scheme {scheme + '://'!r} in {self.name}; "
                             f"supported: {', '.join(s + '://' for s in URL_SCHEMES)}. "
                             f"Received: source={self.name}")
        if timeout <= 0 or reconnect < 0 or reconnect_delay < 0 or reconnect_delay_max < 0:
            raise UsageError(f"timeout must be > 0 and the reconnect settings >= 0. Received: "
                             f"timeout={timeout}, reconnect={reconnect}, "
                             f"reconnect_delay={reconnect_delay}, "
                             f"reconnect_delay_max={reconnect_delay_max}")
        self.timeout = float(timeout)
        self.reconnect = int(reconnect)
        self.reconnect_delay = float(reconnect_delay)
        self.reconnect_delay_max = float(reconnect_delay_max)

    def _connect(self, quick: bool = False):
        """(cap, first frame) or None, within ``timeout`` (+ a small margin) whatever happens.

        ``quick``: a reconnection to a stream already opened once -- FFmpeg skips most of its
        stream probing (it would otherwise read about a second of video to estimate the
        frame rate, which is already known)."""
        import cv2

        ms = int(self.timeout * 1000)
        result = {}

        def attempt():
            with _quick_probe(quick, self.timeout):
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            ok, image = cap.read() if cap.isOpened() else (False, None)
            if ok and image is not None:
                result["ok"] = (cap, image)
            else:
                cap.release()

        # A watchdog on top of FFmpeg's own timeouts: some protocols ignore them.
        thread = threading.Thread(target=attempt, daemon=True, name="vs-url-open")
        thread.start()
        thread.join(self.timeout * 2 + 2.0)
        if thread.is_alive():
            return None
        return result.get("ok")

    def open(self):
        import cv2

        started = time.monotonic()
        got = self._connect()
        if got is None:
            raise DataError(f"cannot open stream {self.name} within {self.timeout:g} s "
                            f"(unreachable, refused or not a video stream; waited "
                            f"{time.monotonic() - started:.1f} s)")
        self.cap, image = got
        self._first = (0, image)
        self._index = 1
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = (fps if fps and 0 < fps < 1000 else 25.0) / self.vid_stride
        return self

    def _reconnect(self, stop) -> bool:
        """Reconnect after a drop: ``reconnect`` attempts, the waits doubling from
        ``reconnect_delay`` up to ``min(reconnect_delay_max, timeout)`` -- never longer than
        the source's own timeout, so a server that comes back is found within about one
        timeout, and never shorter than ``reconnect_delay``, so a dead server sees one cheap
        connection attempt per wait (a refused TCP connection), not a flood."""
        self.close()
        lost = time.monotonic()
        cap = min(self.reconnect_delay_max, self.timeout)
        delay = min(self.reconnect_delay, cap)
        log.warning("%s: stream lost; reconnecting (up to %d attempts)", self.name, self.reconnect)
        for attempt in range(1, self.reconnect + 1):
            if stop.wait(delay):
                return False
            got = self._connect(quick=True)
            if got is not None:
                self.cap, image = got
                self._first = (self._index, image)
                self._index += 1
                outage = time.monotonic() - lost
                self.counts["outages"] += 1
                self.counts["outage_s"] = round(self.counts["outage_s"] + outage, 3)
                log.warning("%s: reconnected after %.1f s (attempt %d)", self.name, outage, attempt)
                return True
            delay = min(max(delay * 2, 0.1), cap)
        self.counts["outages"] += 1
        self.counts["failed"] += 1
        self.counts["outage_s"] = round(self.counts["outage_s"] + time.monotonic() - lost, 3)
        log.warning("%s: gave up after %d reconnection attempts (%.1f s)", self.name,
                    self.reconnect, time.monotonic() - lost)
        return False

    def frames(self, stop):
        while not stop.is_set():
            if self._first is not None:
                first, self._first = self._first, None
                yield self._make(*first)
                continue
            item = self._read()
            if item is None:
                if stop.is_set() or not self._reconnect(stop):
                    break
                continue
            yield self._make(*item)
        self.close()


_CAPTURE_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# FFmpeg demuxer options of a reconnection: no frame-rate probing, a small probe.
_QUICK_OPTIONS = "fpsprobesize;0|probesize;65536|analyzeduration;500000"
_options_lock = threading.Lock()


@contextlib.contextmanager
def _quick_probe(quick: bool, timeout: float):
    """Open with FFmpeg's quick-probe options (``quick``), given to OpenCV through its
    ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` variable, which it reads when a capture opens. The
    user's own options in that variable come after ours and win. Opens of every URL source
    take a lock, so no open sees another's options."""
    got = _options_lock.acquire(timeout=timeout)
    user = os.environ.get(_CAPTURE_OPTIONS)
    try:
        if got and quick:
            os.environ[_CAPTURE_OPTIONS] = "|".join(filter(None, [_QUICK_OPTIONS, user]))
        yield
    finally:
        if got:
            if quick:
                if user is None:
                    os.environ.pop(_CAPTURE_OPTIONS, None)
                else:
                    os.environ[_CAPTURE_OPTIONS] = user
            _options_lock.release()


class ImageSource(Source):
    """Image files: a folder (sorted), a glob pattern or one file. Never drops an image;
    unreadable ones are skipped, counted and reported.

    Args:
        spec: folder, glob pattern (``photos/*.jpg``) or image file.
        paths: the image files, in order, instead of ``spec`` (``spec`` then only names
            the source); ``predict`` uses this for its expanded inputs.
    """

    kind = "images"

    def __init__(self, spec: str | Path, source_id=0, paths=None):
        super().__init__(str(spec), source_id)
        self.spec = str(spec)
        self.given = None if paths is None else [Path(p) for p in paths]
        self.paths: list[Path] = []
        self.skipped: list[tuple[str, str]] = []

    def open(self):
        from visionsuite.data.images import check_image_file, is_image_file, list_images

        path = Path(self.spec)
        if self.given is not None:
            self.paths = list(self.given)
        elif path.is_dir():
            self.paths, self.skipped = list_images(path)
        elif any(c in self.spec for c in "*?["):
            self.paths, self.skipped = [], []
            for p in sorted(Path(p) for p in glob.glob(self.spec, recursive=True)):
                if p.is_file() and is_image_file(p):
                    reason = check_image_file(p)
                    (self.skipped.append((str(p), reason)) if reason else self.paths.append(p))
        else:
            reason = check_image_file(path)
            if reason:
                raise DataError(f"cannot read image {path}: {reason}")
            self.paths = [path]
        self.counts["skipped"] = len(self.skipped)
        for item, reason in self.skipped:
            log.warning("%s: skipped unreadable image %s (%s)", self.name, item, reason)
        if not self.paths:
            raise DataError(f"no readable images in {self.name}"
                            + (f" ({len(self.skipped)} unreadable)" if self.skipped else ""))
        self.total = len(self.paths)
        return self

    def frames(self, stop):
        import cv2

        from visionsuite.data.images import read_image

        for i, path in enumerate(self.paths):
            if stop.is_set():
                break
            try:
                rgb = read_image(path)
            except DataError as exc:
                self.counts["skipped"] += 1
                self.skipped.append((str(path), str(exc)))
                log.warning("%s: skipped %s", self.name, exc)
                continue
            self.counts["frames"] += 1
            yield Frame(self.source_id, i, 0.0, time.perf_counter(),
                        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), str(path))


def open_source(spec: str | int | Path, source_id: int = 0, *, vid_stride: int = 1,
                timeout: float = 10.0, reconnect: int = RECONNECT, reconnect_delay: float = 0.5,
                reconnect_delay_max: float = RECONNECT_DELAY_MAX) -> Source:
    """Make and open the source ``spec`` names.

    ``spec``: a camera index (``0``), a URL (``rtsp://``, ``http(s)://``, ``udp://`` ...), a
    folder of images, a glob pattern, an image file or a video file.
    """
    from visionsuite.data.images import is_image_file

    text = str(spec).strip()
    if isinstance(spec, int) or re.fullmatch(r"\d+", text):
        source: Source = CameraSource(int(text), source_id, vid_stride)
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        source = URLSource(text, source_id, vid_stride, timeout, reconnect, reconnect_delay,
                           reconnect_delay_max)
    elif os.path.isdir(text) or any(c in text for c in "*?[") or is_image_file(text):
        source = ImageSource(text, source_id)
    else:
        source = VideoFileSource(text, source_id, vid_stride)
    return source.open()
