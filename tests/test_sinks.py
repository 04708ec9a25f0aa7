"""Sinks with real files: annotated video (mp4v / MJPG), JSON lines, frame images, and the
window sink on a headless OpenCV build."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite.streams.pipeline import StreamResult
from visionsuite.streams.sinks import (
    FramesSink,
    JsonlSink,
    VideoSink,
    WindowSink,
    gui_problem,
    video_paths,
)


def result(i, source_id=0, size=(64, 96), record=None):
    frame = np.full(size + (3,), (7 * i) % 256, np.uint8)
    return StreamResult(source=f"src{source_id}", source_id=source_id, index=i,
                        timestamp=i / 10, prediction=None,
                        record=record or {"label": "cat", "score": np.float32(0.5)},
                        latency=0.012, frame=frame)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_sink_writes_every_frame_at_the_given_fps(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    sink = VideoSink(path, [12.5])
    for i in range(15):
        sink.write(result(i))
    assert not path.exists()  # written to a .part file until closed
    sink.close()
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, abs=0.01)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 15
    assert not list(tmp_path.glob(".*part*"))


def test_video_sink_one_file_per_source_and_resizes_odd_frames(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", [10, 5])
    sink.write(result(0, 0))
    sink.write(result(0, 1, size=(32, 48)))
    sink.write(result(1, 1, size=(40, 40)))  # image folders mix sizes: resized to the first
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_0.mp4", "out_1.mp4"]
    cap = cv2.VideoCapture(str(tmp_path / "out_1.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 32)
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 2


def test_video_suffix_is_checked():
    with pytest.raises(UsageError, match="unsupported video type '.gif'"):
        video_paths("out.gif", 1)


def test_jsonl_lines_are_complete_while_the_run_goes_on(tmp_path):
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path)
    for i in range(3):
        sink.write(result(i))
        lines = path.read_text().splitlines()  # another process reading mid-run
        assert len(lines) == i + 1
        assert json.loads(lines[-1]) == {"source": "src0", "frame": i, "timestamp": i / 10,
                                         "latency_ms": 12.0,
                                         "result": {"label": "cat", "score": 0.5}}
    sink.close()
    sink.close()  # closing twice is harmless


def test_frames_sink_writes_jpegs(tmp_path):
    sink = FramesSink(tmp_path / "frames")
    for i in range(3):
        sink.write(result(i, source_id=1))
    sink.close()
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["1_000000.jpg", "1_000001.jpg", "1_000002.jpg"]
    assert cv2.imread(str(tmp_path / "frames" / names[2])).shape == (64, 96, 3)


def test_window_sink_headless_gives_one_notice_and_continues(caplog, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert gui_problem() is not None
    sink = WindowSink()
    assert not sink.enabled
    notices = [r for r in caplog.records if "--show" in r.getMessage()]
    assert len(notices) == 1 and "continuing without a window" in notices[0].getMessage()
    for i in range(3):
        sink.write(result(i))  # no error, nothing shown
    sink.close()
    assert len([r for r in caplog.records if "--show" in r.getMessage()]) == 1
