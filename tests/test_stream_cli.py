"""`visionsuite run` as a user runs it (a subprocess): outputs and stats, SIGINT / SIGTERM
during a live HTTP stream (the video plays, every JSON line parses), and one line + a non-zero
exit for each kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionsuite.testing import write_test_video as make_video

SIZE = 32
CLASSES = ("a", "b", "c")
CLI = [sys.executable, "-m", "visionsuite.cli"]






def env():
    return dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")


def cli(*args, timeout=120):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env())


def error_lines(proc):
    """stderr without the TFLite runtime's own INFO banner."""
    return [line for line in proc.stderr.strip().splitlines() if not line.startswith("INFO:")]


@pytest.fixture(scope="module")
def files(tmp_path_factory, save_tiny_classifier):
    from visionsuite.runtime import load_runtime

    root = tmp_path_factory.mktemp("cli")
    keras_model = save_tiny_classifier(root / "tiny.keras", classes=CLASSES)
    load_runtime(keras_model)  # tiny.fp32.tflite: CLI runs below need no TensorFlow import
    return {"keras": keras_model, "tflite": root / "tiny.fp32.tflite",
            "other": save_tiny_classifier(root / "other.keras", task="segmentation", classes=CLASSES),
            "video": make_video(root / "clip.mp4", n=20), "root": root}


def test_run_writes_video_results_and_stats(files, tmp_path):
    proc = cli("run", "classification", "--source", files["video"], "--model", files["tflite"],
               "--save", tmp_path / "out.mp4", "--results", tmp_path / "out.jsonl",
               "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 20 and cap.get(cv2.CAP_PROP_FPS) == 10
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and all(len(d["result"]["top_k"]) == 1 for d in lines)
    stats = json.loads((tmp_path / "out.jsonl.stats.json").read_text())
    assert stats["frames"] == 20 and stats["latency"]["count"] == 20
    assert "capture-to-result latency: p50" in proc.stderr and "20 frames in" in proc.stderr


def test_run_keras_model_with_explicit_stats_path(files, tmp_path):
    proc = cli("run", "classification", "--source", files["video"], "--model", files["keras"],
               "--runtime", "tflite", "--vid-stride", "5", "--stats", tmp_path / "s.json",
               "--set", "top_k=3")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] == 4 and "tiny.fp32.tflite" in stats["runtime"]


# === Ctrl-C and SIGTERM during a live stream ===
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian ffmpeg")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_closes_video_and_results_cleanly(files, tmp_path, sig):
    port = free_port()
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i",
         str(files["video"]), "-c:v", "mpeg2video", "-g", "5", "-q:v", "5", "-f", "mpegts",
         "-listen", "1", f"http://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    video, results = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    time.sleep(0.5)  # let ffmpeg listen (it serves exactly one client)
    run = subprocess.Popen(
        CLI + ["run", "classification", "--source", f"http://127.0.0.1:{port}", "--model",
               str(files["tflite"]), "--save", str(video), "--results", str(results),
               "--timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 8:
                break
            time.sleep(0.1)
        assert run.poll() is None, run.communicate()[1]
        run.send_signal(sig)
        _, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
        server.kill()
        server.wait()
    assert run.returncode == 128 + sig, stderr
    lines = results.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line complete
    assert len(records) >= 8
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(records)  # the video holds every frame written so far
    stats = json.loads(Path(str(results) + ".stats.json").read_text())
    assert stats["stopped_by"] == sig.name and stats["frames"] == len(records)  # all counted
    assert "Traceback" not in stderr


# === Bad input: one line, non-zero exit ===
def run_source(files, source, *extra):
    return cli("run", "classification", "--source", source, "--model", files["tflite"], *extra)


def assert_one_line(proc, code, pattern):
    lines = error_lines(proc)
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], lines
    assert "Traceback" not in proc.stderr


def test_bad_sources(files, tmp_path):
    assert_one_line(run_source(files, tmp_path / "missing.mp4"), 1, "video file not found")
    corrupt = tmp_path / "corrupt.mp4"
    data = files["video"].read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])
    assert_one_line(run_source(files, corrupt), 1, "cannot open video")
    zero = tmp_path / "zero.avi"
    cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32)).release()
    assert_one_line(run_source(files, zero), 1, "no frames")
    assert_one_line(run_source(files, "ftp://u:secret@h/x"), 2, "unsupported URL scheme")
    assert_one_line(run_source(files, "7"), 1, "camera 7 cannot be opened")
    started = time.monotonic()
    proc = run_source(files, f"rtsp://u:secret@127.0.0.1:{free_port()}/s", "--timeout", "2")
    assert time.monotonic() - started < 30  # never hangs
    assert_one_line(proc, 1, "cannot open stream rtsp://u:***@127.0.0.1")
    assert "secret" not in proc.stderr
    assert_one_line(run_source(files, files["video"], "--save", tmp_path / "x.gif"), 2,
                    "unsupported video type")


def test_model_for_another_task(files, tmp_path):
    proc = cli("run", "classification", "--source", files["video"], "--model", files["other"],
               "--results", tmp_path / "r.jsonl")
    assert_one_line(proc, 1, "is a 'segmentation' model, not 'classification'")
    assert not (tmp_path / "r.jsonl").exists()


def test_unreadable_image_in_a_folder_is_skipped_and_counted(files, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.full((30, 30, 3), 80 * i, np.uint8))
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = cli("run", "classification", "--source", folder, "--model", files["tflite"],
               "--results", tmp_path / "r.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3
    assert "bad.jpg" in proc.stderr and "1 skipped" in proc.stderr
    stats = json.loads((tmp_path / "r.jsonl.stats.json").read_text())
    assert stats["sources"][0]["skipped"] == 1


def test_unknown_task_option(files):
    proc = cli("run", "classification", "--source", files["video"], "--model", files["tflite"],
               "--set", "top_kk=3")
    assert_one_line(proc, 2, "has no option 'top_kk'")
