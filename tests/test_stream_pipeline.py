"""The threaded stream pipeline end to end with a tiny classifier run by TFLite: files,
image folders, several sources, strides, early exit, stage errors, the drop policy, and a
real HTTP stream whose server is killed and restarted mid-run."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

import visionsuite
from visionsuite.errors import ModelError, VisionsuiteError
from visionsuite.streams.pipeline import _Hub
from visionsuite.testing import write_test_video as make_video, count_video_frames as count_frames

SIZE = 32
CLASSES = ("red", "green", "blue")








@pytest.fixture(scope="module")
def files(tmp_path_factory, save_tiny_classifier):
    from visionsuite.runtime import load_runtime

    root = tmp_path_factory.mktemp("pipeline")
    model = save_tiny_classifier(root / "tiny.keras", classes=CLASSES)
    load_runtime(model)  # converts once: tiny.fp32.tflite, reused by every test
    other = save_tiny_classifier(root / "seg.keras", task="segmentation", classes=CLASSES)
    video = make_video(root / "clip.mp4", n=20)
    images = root / "images"
    images.mkdir()
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), np.full((40, 50, 3), 60 * i, np.uint8))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return {"model": model, "other": other, "video": video, "images": images}


def test_video_file_to_video_and_jsonl(files, tmp_path):
    stream = visionsuite.run("classification", files["video"], model=files["model"],
                             save=tmp_path / "out.mp4", results=tmp_path / "out.jsonl")
    results = list(stream)
    assert [r.index for r in results] == list(range(20))
    assert all(r.record["label"] in CLASSES and len(r.record["top_k"]) == 2 for r in results)
    assert all(r.frame is not None and r.frame.shape == (64, 96, 3) for r in results)
    assert count_frames(tmp_path / "out.mp4") == (20, pytest.approx(10.0, abs=0.01))
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(20))
    assert lines[3]["timestamp"] == pytest.approx(0.3)
    assert lines[0]["source"] == str(files["video"]) and lines[0]["latency_ms"] > 0
    assert lines[0]["result"] == results[0].record
    stats = stream.stats
    assert stats["frames"] == 20 and stats["stopped_by"] == "end of input"
    assert stats["runtime"].startswith("tflite")
    assert stats["latency"]["count"] == 20 and stats["latency"]["p95_ms"] >= \
        stats["latency"]["p50_ms"]
    for stage in ("capture", "preprocess", "inference", "postprocess", "render", "sinks"):
        assert stats["stages"][stage]["count"] == 20, stage
    assert stats["sources"][0]["dropped"] == 0  # files never drop


def test_vid_stride_keeps_video_timing(files, tmp_path):
    stream = visionsuite.run("classification", files["video"], model=files["model"],
                             vid_stride=2, save=tmp_path / "s.mp4")
    assert [r.index for r in stream] == list(range(0, 20, 2))
    assert count_frames(tmp_path / "s.mp4") == (10, pytest.approx(5.0, abs=0.01))


def test_several_sources_in_one_run(files, tmp_path):
    stream = visionsuite.run("classification", [files["video"], files["images"]],
                             model=files["model"], results=tmp_path / "r.jsonl", batch_size=3,
                             save_frames=tmp_path / "frames")
    results = list(stream)
    by_source = {0: [], 1: []}
    for r in results:
        by_source[r.source_id].append(r)
    assert [r.index for r in by_source[0]] == list(range(20))
    assert [r.path.rsplit("/", 1)[-1] for r in by_source[1]] == ["0.png", "1.png", "2.png",
                                                                 "3.png"]
    sources = stream.stats["sources"]
    assert [s["results"] for s in sources] == [20, 4]
    assert sources[1]["skipped"] == 1 and sources[1]["kind"] == "images"
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 24
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == 24
    assert stream.stats["batch_size"] == 3


def test_leaving_the_loop_early_closes_everything(files, tmp_path):
    stream = visionsuite.run("classification", files["video"], model=files["model"],
                             save=tmp_path / "early.mp4", results=tmp_path / "early.jsonl")
    for i, _ in enumerate(stream):
        if i == 4:
            break
    deadline = time.monotonic() + 10
    while any(t.name.startswith("vs-") for t in threading.enumerate()) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("vs-")]
    written, _ = count_frames(tmp_path / "early.mp4")  # playable: closed cleanly
    lines = (tmp_path / "early.jsonl").read_text().splitlines()
    assert written == len(lines) >= 5
    assert all(json.loads(line)["frame"] < 20 for line in lines)


def test_max_frames(files):
    stream = visionsuite.run("classification", files["video"], model=files["model"],
                             max_frames=7)
    assert len(list(stream)) == 7 and stream.stats["stopped_by"] == "max_frames"


def test_real_clip(files):
    from visionsuite import samples
    from visionsuite.assets import AssetError

    try:
        clip = samples.sample_video("carphone_pristine")
    except AssetError as exc:
        pytest.skip(f"sample clip not available offline: {exc}")
    stream = visionsuite.run("classification", clip, model=files["model"], vid_stride=4)
    results = list(stream)
    assert len(results) == 30 and results[-1].index == 116


def test_model_made_for_another_task(files, tmp_path):
    with pytest.raises(ModelError, match="is a 'segmentation' model, not 'classification'"):
        visionsuite.run("classification", files["video"], model=files["other"],
                        results=tmp_path / "never.jsonl")
    assert not (tmp_path / "never.jsonl").exists()


def test_an_error_in_a_stage_stops_the_run_and_closes_sinks(files, tmp_path):
    from visionsuite_tasks.classification import ClassificationTask

    class Failing(ClassificationTask):
        def postprocess(self, raw, meta, classes):
            if Failing.calls == 5:
                raise ValueError("postprocess broke on purpose")
            Failing.calls += 1
            return super().postprocess(raw, meta, classes)

    Failing.calls = 0
    stream = visionsuite.run(Failing(), files["video"], model=files["model"],
                             results=tmp_path / "f.jsonl", save=tmp_path / "f.mp4")
    seen = []
    with pytest.raises(VisionsuiteError, match="postprocess broke on purpose"):
        for r in stream:
            seen.append(r.index)
    # results already computed may or may not reach the sinks; what was written is whole
    assert seen == list(range(len(seen))) and len(seen) <= 5
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    assert len(seen) <= len(lines) <= 5 and [json.loads(x)["frame"] for x in lines] == \
        list(range(len(lines)))
    assert count_frames(tmp_path / "f.mp4")[0] == len(lines)


# === Drop policy ===
def test_newest_policy_keeps_only_the_latest_item():
    stop = threading.Event()
    hub = _Hub(["newest", "queue"], capacity=2, stop=stop)
    for i in range(5):
        hub.put(0, i)
    assert hub.dropped == [4, 0]
    assert hub.get(4) == [4]
    hub.put(1, "a")
    hub.put(1, "b")
    blocked = threading.Thread(target=hub.put, args=(1, "c"))
    blocked.start()  # a full queue buffer makes the producer wait (never drops)
    blocked.join(0.3)
    assert blocked.is_alive()
    assert hub.get(1) == ["a"]
    blocked.join(2)
    assert not blocked.is_alive() and hub.get(5) == ["b", "c"]
    hub.finish(0)
    hub.finish(1)
    assert hub.get(1) is None and hub.dropped == [4, 0]


def test_hub_serves_sources_round_robin():
    hub = _Hub(["queue", "queue"], capacity=10, stop=threading.Event())
    for i in range(3):
        hub.put(0, f"a{i}")
    hub.put(1, "b0")
    assert hub.get(3) == ["a0", "b0", "a1"]


# === A real network stream, killed and restarted mid-run ===
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_http(video, port):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-stream_loop", "-1",
           "-i", str(video), "-c:v", "mpeg2video", "-g", "5", "-q:v", "5", "-f", "mpegts",
           "-listen", "1", f"http://127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian ffmpeg")
def test_stream_reconnects_and_keeps_writing_results(files, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_http(files["video"], port)
    results = tmp_path / "live.jsonl"
    try:
        for _ in range(40):
            try:
                stream = visionsuite.run("classification", url, model=files["model"],
                                         results=results, timeout=10.0, reconnect=20,
                                         reconnect_delay=0.2, reconnect_delay_max=1.0)
                break
            except VisionsuiteError:
                time.sleep(0.25)  # the server is not listening yet
        seen, restarted_at = 0, None
        for _ in stream:
            seen += 1
            if seen == 8:
                server.kill()
                server.wait()
                server = serve_http(files["video"], port)
            if stream.sources[0].counts["outages"] and restarted_at is None:
                restarted_at = seen
            if restarted_at is not None and seen >= restarted_at + 10:
                stream.stop("test done")
    finally:
        server.kill()
        server.wait()
    source = stream.stats["sources"][0]
    assert source["outages"] == 1 and source["failed"] == 0
    assert restarted_at is not None
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) >= restarted_at + 10
    assert stream.stats["stopped_by"] == "test done"
    assert "***" not in lines[0]["source"] and lines[0]["source"] == url


def test_frames_reach_the_model_as_rgb(files, tmp_path):
    from visionsuite.runtime import load_runtime

    rng = np.random.default_rng(0)
    path = tmp_path / "colour.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for _ in range(6):
        writer.write(np.kron(rng.integers(0, 256, (4, 6, 3)), np.ones((16, 16, 1)))
                     .astype(np.uint8))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = [cap.read()[1] for _ in range(6)]
    model = load_runtime(files["model"])

    def probs(image):
        x = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        return model(x[None])["probabilities"][0]

    results = list(visionsuite.run("classification", path, model=files["model"]))
    swapped = []
    for r, bgr in zip(results, decoded):
        expected = probs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        np.testing.assert_allclose(r.prediction.scores, expected[r.prediction.indices],
                                   atol=1e-6)
        swapped.append(np.abs(probs(bgr) - expected).max())
    assert max(swapped) > 1e-5  # the check can tell RGB from BGR


def test_memory_stays_flat_on_a_long_stream(files, tmp_path):
    from visionsuite.streams.pipeline import _rss_mb

    long_video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(long_video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3)).astype(np.uint8)
    for _ in range(1500):
        writer.write(frame)
    writer.release()
    stream = visionsuite.run("classification", long_video, model=files["model"],
                             results=tmp_path / "long.jsonl", save=tmp_path / "long.mp4")
    samples = {}
    for i, _ in enumerate(stream):
        if i in (300, 1499):
            samples[i] = _rss_mb()
    assert stream.stats["frames"] == 1500
    # buffers are bounded: 1,200 more frames (~70 MB of pixels) add next to nothing
    assert samples[1499] - samples[300] < 25, samples
