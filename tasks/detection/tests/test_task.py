"""The detection task class: options through the real CLI, record format, tracking and exact
line counts through `visionsuite run`, the per-source state, dataset checks and conversion.

The engine tests use a detector built by hand from standard Keras layers (no training): the
mean brightness over a 32 x 32 window around each stride-8 anchor point is the score of the
one class "square", and the box is the anchor +- 16 px (``DistanceDecode`` of a constant
distribution). On a clip of white 32 x 32 squares on black whose centres move 8 px per frame
along the anchor grid, it finds every square exactly, so tracks and line crossings are known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.detection import DetectionConfig, DetectionPrediction, DetectionTask

CLI = [sys.executable, "-m", "visionsuite.cli"]
H, W, SIDE, REG_MAX = 128, 192, 32, 4
# Square centres per frame: A goes down at x=36, B goes up at x=140, 8 px a frame.
FRAMES = 12
A = [(36, 20 + 8 * t) for t in range(FRAMES)]
B = [(140, 108 - 8 * t) for t in range(FRAMES)]
LINE = "0,64,192,64"  # drawn left to right: moving down across it is "in"


def cli(*args, timeout=300):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def square_detector(path):
    """Save the hand-built square detector (see the module docstring) as a .keras model."""
    import keras

    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite.specs import InputSpec, OutputSpec
    from visionsuite_tasks.detection.models import DistanceDecode

    image = keras.Input((H, W, 3), name="image")
    gray = keras.layers.Conv2D(1, 1, use_bias=False, name="gray")(image)
    window = keras.layers.AveragePooling2D(SIDE, strides=8, padding="same")(gray)
    scores = keras.layers.Reshape((-1, 1), name="scores")(window)
    logits = keras.layers.Conv2D(4 * REG_MAX, 1, name="logits")(window)
    logits = keras.layers.Reshape((-1, 4 * REG_MAX))(logits)
    boxes = DistanceDecode((H, W), strides=(8,), reg_max=REG_MAX, name="boxes")(logits)
    model = keras.Model(image, {"boxes": boxes, "scores": scores})
    model.get_layer("gray").set_weights([np.full((1, 1, 3, 1), 1 / 765, np.float32)])
    bias = np.full((4, REG_MAX), -20.0, np.float32)
    bias[:, 2] = 20.0  # every side 2 strides = 16 px from the anchor
    model.get_layer("logits").set_weights([np.zeros((1, 1, 1, 4 * REG_MAX), np.float32),
                                           bias.reshape(-1)])
    meta = ModelMetadata(task="detection", classes=("square",),
                         input_spec=InputSpec.image((H, W), divisor=32),
                         outputs=(OutputSpec("boxes", (None, 4)), OutputSpec("scores", (None, 1))),
                         task_config={"input_hw": [H, W], "image_size": 640})
    return save_keras_model(model, path, meta)


def write_clip(path):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for t in range(FRAMES):
        frame = np.zeros((H, W, 3), np.uint8)
        for cx, cy in (A[t], B[t]):
            frame[cy - SIDE // 2:cy + SIDE // 2, cx - SIDE // 2:cx + SIDE // 2] = 255
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """One `visionsuite run` over the clip opened as two sources, tracking and counting."""
    folder = tmp_path_factory.mktemp("det-run")
    model = square_detector(folder / "squares.keras")
    clip = write_clip(folder / "squares.avi")
    twin = write_clip(folder / "twin.avi")
    results = folder / "out.jsonl"
    proc = cli("run", "detection", "--source", str(clip), "--source", str(twin),
               "--model", str(model), "--runtime", "keras", "--results", str(results),
               "--save-frames", str(folder / "frames"), "--policy", "queue",
               "--track", "--line", LINE, "--conf", "0.8", "--iou", "0.3")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    return records, folder


def per_source(records):
    out = {}
    for r in records:
        out.setdefault(r["source"], []).append(r)
    return [sorted(v, key=lambda r: r["frame"]) for v in out.values()]


def test_tracks_keep_their_ids_and_each_source_has_its_own_state(engine_run):
    records, _ = engine_run
    sources = per_source(records)
    assert len(sources) == 2 and all(len(s) == FRAMES for s in sources)
    for recs in sources:
        ids_a, ids_b = [], []
        for t, r in enumerate(recs):
            dets = r["result"]["detections"]
            assert len(dets) == 2, dets  # each square exactly once
            for d in dets:
                cx, cy = (d["box"][0] + d["box"][2]) / 2, (d["box"][1] + d["box"][3]) / 2
                near_a = abs(cx - A[t][0]) <= 1 and abs(cy - A[t][1]) <= 1
                near_b = abs(cx - B[t][0]) <= 1 and abs(cy - B[t][1]) <= 1
                assert near_a or near_b, (t, d)
                (ids_a if near_a else ids_b).append(d.get("track_id"))
        # A track starts on the first frame (score ~1 > new_track_thresh) and keeps its id.
        assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and None not in ids_a + ids_b
        assert ids_a[0] != ids_b[0]
    # The second source's tracker is its own: the same clip gives the same ids.
    first = [[d["track_id"] for d in r["result"]["detections"]] for r in sources[0]]
    second = [[d["track_id"] for d in r["result"]["detections"]] for r in sources[1]]
    assert sorted(map(sorted, first)) == sorted(map(sorted, second))


def test_line_counts_are_exact_and_records_have_the_documented_fields(engine_run):
    records, folder = engine_run
    for recs in per_source(records):
        last = recs[-1]["result"]
        assert last["counts"] == {"in": 1, "out": 1}  # A crosses down, B crosses up
        events = [e for r in recs for e in r["result"]["events"]]
        assert sorted(e["direction"] for e in events) == ["in", "out"]
        det = recs[0]["result"]["detections"][0]
        assert set(det) == {"box", "score", "class", "track_id"} and det["class"] == "square"
        assert len(det["box"]) == 4 and 0.8 <= det["score"] <= 1.0
    frames = sorted((folder / "frames").iterdir())
    assert len(frames) == 2 * FRAMES


def test_task_options_parse_and_bad_values_are_one_line_errors(tmp_path):
    from visionsuite.predict import task_overrides

    values = task_overrides("detection", ["task.max_det=5"],
                            ["--conf", "0.4", "--classes", "person,car", "--track",
                             "--line=0,10,100,10", "--zone", "0,0,50,0,50,50"])
    assert values == {"max_det": 5, "conf": 0.4, "classes": "person,car", "track": True,
                      "line": "0,10,100,10", "zone": "0,0,50,0,50,50"}
    config = DetectionConfig(**values)
    assert config.tracking and DetectionTask(config).input_spec().shape == (640, 640, 3)
    assert DetectionTask(DetectionConfig(input_hw=(96, 160))).input_spec().shape == (96, 160, 3)
    for bad in ({"conf": 1.5}, {"image_size": 100}, {"input_hw": (96, 100)}, {"line": "1,2,3"},
                {"zone": "0,0,1,1"}):
        with pytest.raises(UsageError, match="Received"):
            DetectionConfig(**bad)
    # through the real CLI: one line, before any model is loaded
    proc = cli("run", "detection", "--source", "x.mp4", "--line", "1,2,3")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "line" in lines[0], proc.stderr


def test_unknown_class_filter_is_a_usage_error_with_a_suggestion():
    from visionsuite.specs import InputSpec

    task = DetectionTask(DetectionConfig(classes="persn", image_size=64))
    with pytest.raises(UsageError, match="did you mean.*person|person"):
        task.new_state("cam", InputSpec.image(64, divisor=32), ["person", "car"])


def test_postprocess_maps_boxes_to_the_source_and_to_record():
    task = DetectionTask(DetectionConfig(image_size=64, conf=0.5, classes="b"))
    image = np.zeros((32, 128, 3), np.uint8)  # letterboxed: scale 0.5, 16 px bands
    x, meta = task.preprocess(image, task.input_spec())
    assert x.shape == (64, 64, 3) and x.dtype == np.float32
    boxes = np.array([[8, 28, 24, 36], [40, 20, 56, 44], [0, 0, 4, 4]], np.float32)
    scores = np.array([[0.1, 0.9], [0.7, 0.2], [0.9, 0.0]], np.float32)
    pred = task.postprocess({"boxes": boxes, "scores": scores}, meta, ["a", "b"])
    assert isinstance(pred, DetectionPrediction)
    np.testing.assert_allclose(pred.boxes, [[16, 8, 48, 24]], atol=1e-4)  # class b only
    record = task.to_record(pred)
    assert record == {"detections": [{"box": [16.0, 8.0, 48.0, 24.0], "score": 0.9,
                                      "class": "b"}]}
    assert task.summary(record) == "1 detection: b 0.90"
    frame = np.zeros((32, 128, 3), np.uint8)
    drawn = task.render(frame, pred)
    assert drawn.shape == frame.shape and drawn.any() and not frame.any()
    with pytest.raises(Exception, match="Received"):
        task.postprocess({"boxes": boxes, "scores": scores[:, :1]}, meta, ["a", "b"])


def test_training_batches_are_letterboxed_padded_and_boxes_stay_on_objects(tmp_path):
    task = DetectionTask(DetectionConfig(image_size=64, max_boxes=6, mosaic=1.0))
    root = task.make_tiny_dataset(tmp_path / "tiny", ["square", "disc"])
    data = task.load_dataset(root, split="train")
    assert data.classes == ["square", "disc"] and len(data) == 8
    for training in (False, True):
        x, y = next(iter(task.make_tf_dataset(data, batch_size=4, training=training)))
        boxes, classes = y["boxes"].numpy(), y["classes"].numpy()
        assert x.shape == (4, 64, 64, 3) and boxes.shape == (4, 6, 4) and classes.shape == (4, 6)
        real = classes >= 0
        assert np.all(boxes[~real] == -1) and np.all(classes[real] < 2)
        b = boxes[real]
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        assert b.min() >= 0 and b[:, [0, 2]].max() <= 64 and b[:, [1, 3]].max() <= 64
        if not training:  # the letterbox of inference: scale 2/3, grey bands above and below
            from visionsuite_tasks.detection.boxes import letterbox_geometry

            lb = letterbox_geometry((64, 96), (64, 64))
            assert lb.scale == pytest.approx(2 / 3) and lb.pad_x == 0 and 10 <= lb.pad_y <= 11
            expected = lb.to_input(data.samples[1].target["boxes"])
            np.testing.assert_allclose(boxes[1][real[1]], expected, atol=0.01)


def test_load_dataset_reports_bad_items_and_corrupt_files_are_one_line(tmp_path, caplog):
    task = DetectionTask(DetectionConfig(image_size=64))
    root = task.make_tiny_dataset(tmp_path / "tiny", ["square", "disc"])
    ann = root / "annotations" / "instances_train.json"
    doc = json.loads(ann.read_text())
    first = doc["annotations"][0]
    doc["annotations"] += [
        dict(first, id=900, bbox=[500, 500, 10, 10]),  # outside the image
        dict(first, id=901, category_id=7),  # unknown class
        dict(first, id=902, bbox=[5, 5, -3, 4]),  # negative size
    ]
    ann.write_text(json.dumps(doc))
    data = task.load_dataset(root, split="train")
    assert len(data.skipped) == 3 and len(data) == 8
    assert all(reason for _, reason in data.skipped)
    with pytest.raises(DataError):
        task.load_dataset(root, split="train", strict=True)
    ann.write_text('{"images": [')  # corrupt JSON
    with pytest.raises(DataError, match="instances_train.json"):
        task.load_dataset(root, split="train")
    proc = cli("convert", "detection", str(root), str(tmp_path / "out"), "--to", "yolo")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "instances_train.json" in lines[0]


def test_convert_command_writes_yolo_and_reports(tmp_path):
    task = DetectionTask(DetectionConfig(image_size=64))
    root = task.make_tiny_dataset(tmp_path / "tiny", ["square", "disc"])
    proc = cli("convert", "detection", str(root), str(tmp_path / "yolo"), "--to", "yolo")
    assert proc.returncode == 0, proc.stderr
    assert "coco -> yolo" in proc.stdout
    back = task.load_dataset(tmp_path / "yolo", split="train")
    orig = task.load_dataset(root, split="train")
    assert sum(len(s.target["boxes"]) for s in back.samples) == \
        sum(len(s.target["boxes"]) for s in orig.samples)
    proc = cli("convert", "classification", str(root), str(tmp_path / "x"), "--to", "yolo")
    assert proc.returncode == 2 and "no dataset conversion" in proc.stderr
