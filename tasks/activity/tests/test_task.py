"""The activity task class: streamed windows vs the step model, state reset, events, records,
rendering, and the CLI (train / evaluate / run) on tiny generated clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from visionsuite.cli import main
from visionsuite.errors import ModelError, UsageError
from visionsuite.specs import InputSpec
from visionsuite_tasks.activity import ActivityConfig, ActivityTask

SIZE, FRAMES = 32, 8
CLASSES = ["left", "right", "up"]


@pytest.fixture(scope="module")
def task():
    return ActivityTask(ActivityConfig(image_size=SIZE, frames=FRAMES, width=8,
                                       motion_channels=4, event_on=0.3, event_off=0.2,
                                       event_min_frames=2))


@pytest.fixture(scope="module")
def model(task):
    import keras

    from visionsuite.backbones import build_backbone

    keras.utils.set_random_seed(0)
    bb = build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8, 8), depth=1)
    return task.build_model(bb, CLASSES)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(FRAMES + 5)]


def _stream(task, model, frames, source="cam"):
    """Push frames through the task's state with the Keras clip model as the runtime."""
    state = task.new_state(source, task.input_spec(), CLASSES)
    out = []
    for i, f in enumerate(frames):
        for x, ctx in state.push(f, {"source": source, "frame": i, "timestamp": i / 10}):
            y = {k: np.asarray(v)[0] for k, v in model(np.asarray(x)[None], training=False).items()}
            out.append((i, state.merge(y, ctx)))
    return state, out


def test_streamed_windows_equal_the_step_model_frame_by_frame(task, model, frames):
    """The engine's path (a sliding clip through the exported clip model) and the causal step
    with carried state give the same probabilities at every frame once the window is full."""
    import cv2

    _, predictions = _stream(task, model, frames)
    assert [i for i, _ in predictions] == list(range(FRAMES - 1, len(frames)))
    streamer = task.streamer(model)
    stepped = []
    for f in frames:
        rgb = cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (SIZE, SIZE),
                         interpolation=cv2.INTER_AREA).astype(np.float32)
        stepped.append(streamer(rgb)["probabilities"])
    for i, p in predictions:
        np.testing.assert_allclose(p.probabilities, stepped[i], atol=1e-4)
    assert model.receptive_field <= FRAMES


def test_state_restarts_at_end_of_input_and_windows_never_cross_sources(task, model, frames):
    state, first = _stream(task, model, frames[:FRAMES + 1])
    state.close()
    assert state.detector.active is None
    fresh = task.new_state("cam", task.input_spec(), CLASSES)  # what the engine makes next
    pushed = [list(fresh.push(f, {"frame": i})) for i, f in enumerate(frames[:FRAMES - 1])]
    assert not any(pushed)  # a new window must fill again before the first prediction
    assert len(first) == 2


def test_input_shorter_than_a_clip_says_so_in_one_line(task, frames, caplog):
    state = task.new_state("photo.png", task.input_spec(), CLASSES)
    assert not list(state.push(frames[0], {"frame": 0}))
    with caplog.at_level("WARNING"):
        state.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"photo.png: input ended after 1 frame(s), fewer than one clip of {FRAMES}: no "
        f"prediction (give a video, or a folder of its frames)"]


def test_stride_and_events_in_records(model, frames):
    task = ActivityTask(ActivityConfig(image_size=SIZE, frames=FRAMES, width=8, motion_channels=4,
                                       stride=3, event_on=0.0, event_off=0.0,
                                       event_min_frames=1))
    _, predictions = _stream(task, model, frames)
    assert [i for i, _ in predictions] == list(range(FRAMES - 1, len(frames), 3))
    records = [task.to_record(p) for _, p in predictions]
    json.dumps(records)
    assert records[0]["label"] in CLASSES and len(records[0]["top_k"]) == 3
    assert records[0]["clip_frames"] == [0, FRAMES - 1]
    assert all(r["active"] in CLASSES for r in records)  # on=0: the top label is active at once
    labels = [r["label"] for r in records]
    switches = sum(a != b for a, b in zip(labels, labels[1:]))
    assert sum(len(r["events"]) for r in records) == switches


def test_render_draws_label_and_event_on_a_copy(task, model, frames):
    _, predictions = _stream(task, model, frames)
    frame = np.zeros((96, 128, 3), np.uint8)
    p = predictions[-1][1]
    p.active = p.label
    drawn = task.render(frame, p)
    assert not frame.any() and drawn.shape == frame.shape and drawn.any()
    plain = task.render(frame, type(p)(p.classes, label=p.label, score=p.score))
    assert (drawn != 0).sum() > (plain != 0).sum()  # the event line adds text


def test_bad_options_and_outputs_are_one_line_errors(task):
    for kwargs, key in [({"stride": 0}, "stride"), ({"mode": "3d"}, "mode"),
                        ({"event_on": 0.2, "event_off": 0.5}, "event_on")]:
        with pytest.raises(UsageError, match=f"Received: {key}="):
            ActivityConfig(**kwargs)
    with pytest.raises(ModelError, match="3 classes"):
        task.postprocess({"probabilities": np.ones(5)}, {}, CLASSES)
    with pytest.raises(ModelError, match="THWC"):
        task.new_state("cam", InputSpec.image(32), CLASSES)
    with pytest.raises(UsageError, match="receptive|frames must be"):
        ActivityTask(ActivityConfig(image_size=SIZE, frames=4)).build_model(None, CLASSES)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of `visionsuite train activity` on tiny generated clips (the real CLI)."""
    root = tmp_path_factory.mktemp("act")
    task = ActivityTask(ActivityConfig(image_size=SIZE, frames=FRAMES))
    data = task.make_tiny_dataset(root / "data", CLASSES)
    result = _cli("train", "activity", "--data", data, "--val-data", data,
                  "--backbone", "simple_cnn", "--set", 'backbone_args={"widths": [4, 8, 8], "depth": 1}',
                  "--image-size", SIZE, "--epochs", 1, "--batch-size", 2,
                  "--set", "task.width=8", "--set", "task.motion_channels=4",
                  "--name", "t", "--runs-dir", root / "runs")
    assert result.exit_code == 0, result.output + result.stderr
    model = next((root / "runs" / "activity" / "t").glob("best*.keras"))
    return root, data, model


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_cli_evaluate_and_run_with_events(trained, tmp_path):
    from visionsuite.testing import write_test_video

    root, data, model = trained
    result = _cli("evaluate", "activity", "--model", model, "--data", data, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["num_samples"] == 6 and set(report["per_class"]) == set(CLASSES)
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 0

    video = write_test_video(tmp_path / "v.mp4", n=FRAMES + 6)
    other = write_test_video(tmp_path / "w.mp4", n=FRAMES + 6)
    result = _cli("run", "activity", "--model", model, "--source", video, "--source", other,
                  "--results", tmp_path / "r.jsonl", "--events", tmp_path / "e.jsonl",
                  "--stride", 2, "--event-on", 0.0, "--event-off", 0.0)
    assert result.exit_code == 0, result.output + result.stderr
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    for source in {r["source"] for r in rows}:  # one fresh window per source
        frames = [r["frame"] for r in rows if r["source"] == source]
        assert frames == list(range(FRAMES - 1, FRAMES + 6, 2))
    assert len(rows) == 2 * 4
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert events and all(e["label"] in CLASSES for e in events)  # open events closed at the end

    bad = _cli("run", "activity", "--model", model, "--source", video, "--stride", 0)
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    assert "stride must be >= 1. Received: stride=0" in bad.stderr


@pytest.mark.parametrize("args, expected", [
    (["--set", "task.stride=0"], "stride must be >= 1. Received: stride=0"),
    (["--set", "task.mode=3d"], "Received: mode='3d'"),
    (["--set", "task.frames=4"], "frames must be at least that. Received: frames=4"),
])
def test_cli_bad_task_options_are_one_line(tmp_path, args, expected):
    data = ActivityTask(ActivityConfig(image_size=SIZE, frames=FRAMES)).make_tiny_dataset(
        tmp_path / "data", CLASSES[:2])
    result = _cli("train", "activity", "--data", data, "--image-size", SIZE, "--epochs", 1,
                  "--name", "bad", "--runs-dir", tmp_path / "runs", *args)
    assert result.exit_code != 0 and "Traceback" not in result.stderr + result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert expected in result.stderr
