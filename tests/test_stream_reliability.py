"""Streams that go wrong: no password is printed (errors, logs, stats, --debug), a live
source lost for good exits 3 with ``stopped_by: source lost``, a stopped stream's stats count
exactly the frames its sinks wrote, and reconnection waits are capped at the source's timeout.

The live streams are ffmpeg HTTP servers on 127.0.0.1 (Debian ffmpeg)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest
from click.testing import CliRunner

from visionsuite.cli import main
from visionsuite.streams.sources import URLSource, mask_url
from visionsuite.testing import write_test_video

CLASSES = ("a", "b", "c")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian ffmpeg")


@pytest.mark.parametrize("text, shown", [
    ("http://:secret@127.0.0.1:9/live", "http://:***@127.0.0.1:9/live"),
    ("http://user:sec@ret@host/live", "http://user:***@host/live"),
    ("rtsp://user:secret@cam:554/s", "rtsp://user:***@cam:554/s"),
    ("rtsp://user:pa/ss@cam/s", "rtsp://user:***@cam/s"),
    ("see 'rtsp://a:b1@h/x' and udp://c:d2@h:5", "see 'rtsp://a:***@h/x' and udp://c:***@h:5"),
    ("http://cam/video.cgi?user=admin&pwd=hunter2&res=1",
     "http://cam/video.cgi?user=admin&pwd=***&res=1"),
    ("http://cam:8080/live", "http://cam:8080/live"),
    ("rtsp://user@cam/s", "rtsp://user@cam/s"),
])
def test_mask_url_parses_the_authority(text, shown):
    assert mask_url(text) == shown


@pytest.fixture(scope="module")
def tflite(tmp_path_factory, save_tiny_classifier):
    from visionsuite.runtime import load_runtime

    root = tmp_path_factory.mktemp("stream_rel")
    model = save_tiny_classifier(root / "tiny.keras", classes=CLASSES)
    load_runtime(model)  # writes tiny.fp32.tflite beside it
    return root / "tiny.fp32.tflite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("url", ["http://:s3cret@127.0.0.1:{port}/live",
                                 "http://user:s3c@ret@127.0.0.1:{port}/live"])
def test_unreachable_stream_error_never_shows_the_password(tflite, url, debug):
    url = url.format(port=free_port())
    args = (["--debug"] if debug else []) + ["run", "classification", "--source", url,
                                             "--model", tflite, "--timeout", "1"]
    result = cli(*args)
    assert result.exit_code == 1
    assert "s3c" not in result.stderr and "ret@" not in result.stderr
    assert ":***@127.0.0.1" in result.stderr
    if debug:
        assert "Traceback" in result.stderr
    else:
        assert len(result.stderr.strip().splitlines()) == 1


def serve(port: int, seconds: float | None = None) -> subprocess.Popen:
    """A test pattern over HTTP (MPEG-TS) on 127.0.0.1:port for one client."""
    duration = ["-t", str(seconds)] if seconds else []
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
         "testsrc=size=64x48:rate=10", *duration, "-c:v", "mpeg2video", "-g", "5",
         "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/live"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@needs_ffmpeg
def test_lost_source_exits_3_and_no_printed_path_shows_the_password(tflite, tmp_path, caplog):
    port = free_port()
    server = serve(port, seconds=3)
    time.sleep(1.0)  # let ffmpeg listen (a loaded machine is slow to start it)
    results = tmp_path / "live.jsonl"
    try:
        result = cli("run", "classification", "--source", f"http://:s3cret@127.0.0.1:{port}/live",
                     "--model", tflite, "--timeout", "5", "--reconnect", "2",
                     "--results", results)
    finally:
        server.kill()
        server.wait()
    assert result.exit_code == 3, result.stderr
    stats_text = (tmp_path / "live.jsonl.stats.json").read_text()
    stats = json.loads(stats_text)
    assert stats["stopped_by"] == "source lost" and stats["sources"][0]["failed"] == 1
    lines = results.read_text().splitlines()
    assert stats["frames"] == len(lines) > 0
    # logs ("stream lost", "gave up"), the printed summary, the stats file, the results
    logs = caplog.text  # (pytest captures the warnings a terminal would show)
    assert "stream lost" in logs and "gave up" in logs
    assert "source lost" in result.stderr
    for text in (logs, result.stderr, result.output, stats_text, results.read_text()):
        assert "s3cret" not in text
    assert "http://:***@127.0.0.1" in result.stderr and ":***@" in stats_text


def test_reconnect_waits_are_capped_at_the_timeout(monkeypatch):
    source = URLSource("http://127.0.0.1:9/live", timeout=1.0, reconnect=6,
                       reconnect_delay=0.25, reconnect_delay_max=10.0)
    monkeypatch.setattr(source, "_connect", lambda quick=False: None)  # the server stays down
    waits = []

    class Clock:
        def wait(self, seconds):
            waits.append(seconds)
            return False

        def is_set(self):
            return False

    assert source._reconnect(Clock()) is False
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0]  # doubling, then the 1 s timeout
    assert source.counts["failed"] == 1 and source.counts["outages"] == 1


@needs_ffmpeg
def test_stream_reconnects_when_the_server_comes_back():
    port = free_port()
    server = serve(port)
    time.sleep(0.5)
    source = URLSource(f"http://127.0.0.1:{port}/live", timeout=5.0, reconnect=20).open()
    import threading

    stop = threading.Event()
    frames = []

    def read():
        for frame in source.frames(stop):
            frames.append(frame.index)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)
        server.kill()
        server.wait()
        time.sleep(2.0)
        before = len(frames)
        server = serve(port)
        deadline = time.monotonic() + 30
        while len(frames) <= before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        server.kill()
        server.wait()
        reader.join(10)
        source.close()
    assert len(frames) > before + 3 and source.counts["outages"] == 1
    assert source.counts["failed"] == 0


def test_stats_count_what_the_sinks_wrote_when_stopped(tflite, tmp_path):
    import visionsuite

    video = write_test_video(tmp_path / "clip.mp4", n=60)
    results = tmp_path / "r.jsonl"
    stream = visionsuite.run("classification", str(video), model=str(tflite),
                             results=str(results), save=str(tmp_path / "out.avi"))
    n = 0
    for _ in stream:
        n += 1
        if n == 3:
            time.sleep(0.5)  # the sink thread runs ahead of this slow consumer ...
            stream.stop("SIGINT")
            time.sleep(0.5)  # ... and holds a written result when the signal comes
    lines = results.read_text().splitlines()
    assert stream.stats["stopped_by"] == "SIGINT"
    assert stream.stats["frames"] == len(lines) == stream.stats["sources"][0]["results"]
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    written = 0
    while cap.read()[0]:
        written += 1
    assert written == len(lines)


def test_max_frames_writes_exactly_that_many(tflite, tmp_path):
    import visionsuite

    video = write_test_video(tmp_path / "clip.mp4", n=40)
    results = tmp_path / "r.jsonl"
    stream = visionsuite.run("classification", str(video), model=str(tflite),
                             results=str(results), max_frames=5)
    got = []
    for r in stream:
        got.append(r)
        time.sleep(0.05)  # let the pipeline fill its buffers
    assert len(got) == 5 and len(results.read_text().splitlines()) == 5
    assert stream.stats["frames"] == 5


def test_tflite_runs_print_no_xnnpack_notice(tflite, tmp_path):
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ the
    first time an interpreter allocates its tensors; the CLI output stays clean."""
    import os
    import sys

    import cv2
    import numpy as np

    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((40, 40, 3), 90, np.uint8))
    proc = subprocess.run([sys.executable, "-m", "visionsuite.cli", "predict", "classification",
                           "--model", str(tflite), str(image)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    assert proc.returncode == 0, proc.stderr
    assert "img.png: " in proc.stdout
    assert "XNNPACK" not in proc.stderr and "INFO:" not in proc.stderr, proc.stderr
