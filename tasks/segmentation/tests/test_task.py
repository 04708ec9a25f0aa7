"""The segmentation task: data pipeline, fit/evaluate smoke test, postprocess/render/to_record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from visionsuite.backbones import build_backbone
from visionsuite_tasks.segmentation import SegmentationConfig, SegmentationTask
from visionsuite_tasks.segmentation import readers

ROOT = Path(__file__).resolve().parents[3]
CLASSES = ["background", "a", "b"]


def _tool():
    spec = importlib.util.spec_from_file_location("make_shapes_dataset",
                                                  ROOT / "tools" / "make_shapes_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "shapes"
    return _tool().make_dataset(out, train=8, test=4, size=32, seed=3)


def test_shapes_tool_writes_a_readable_dataset(shapes):
    task = SegmentationTask(SegmentationConfig(image_size=32))
    train = task.load_dataset(shapes, split="train")
    test = task.load_dataset(shapes, split="test")
    assert train.classes == ["background", "circle", "rectangle", "triangle"]
    assert (len(train), len(test)) == (8, 4)
    counts = readers.class_pixel_counts(train)
    assert (counts > 0).all()  # every class drawn somewhere
    assert counts[0] > counts[1:].max()  # the photo background dominates
    with pytest.raises(SystemExit, match="already exists"):
        _tool().make_dataset(shapes)


def test_pipeline_keeps_image_and_mask_aligned_under_augmentation(tmp_path):
    """Each class has its own flat colour, so after flips, crops, scaling and rotation
    every mask label must still sit on its colour."""
    colors = np.array([[0, 0, 0], [250, 0, 0], [0, 0, 250]], np.uint8)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("classes: [background, a, b]\n")
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = np.zeros((48, 64), np.uint8)
        mask[rng.integers(0, 20):40, rng.integers(0, 20):30] = 1
        mask[5:rng.integers(20, 45), 35:rng.integers(45, 64)] = 2
        cv2.imwrite(str(root / "images" / f"{i}.png"), colors[mask][..., ::-1])
        cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
    task = SegmentationTask(SegmentationConfig(image_size=32, augment=1.0, color_jitter=False))
    data = task.load_dataset(root)
    ds = task.make_tf_dataset(data, batch_size=4, training=True, seed=1)
    for _ in range(2):  # two epochs, different augmentations
        x, y = next(iter(ds))
        x, y = x.numpy(), y.numpy()
        assert x.shape == (4, 32, 32, 3) and y.shape == (4, 32, 32) and y.dtype == np.int32
        nearest = np.argmin(((x[..., None, :] - colors[None, None, None]) ** 2).sum(-1), axis=-1)
        # Pixels whose 3x3 neighbourhood has one label (edges are interpolated in the image).
        inner = np.stack([sum(cv2.erode((m == k).astype(np.uint8), np.ones((3, 3), np.uint8))
                              for k in range(3)) for m in y]).astype(bool)
        assert inner.mean() > 0.5
        assert (nearest == y)[inner].mean() > 0.98


def test_fit_two_steps_then_evaluate_writes_reports(shapes, tmp_path):
    task = SegmentationTask(SegmentationConfig(image_size=32, head="lraspp", head_channels=8,
                                               class_weights=True, loss="ce_dice"))
    train = task.load_dataset(shapes, split="train")
    bb = build_backbone("simple_cnn", (32, 32, 3), widths=(8, 8, 8, 8, 8), depth=1)
    model = task.build_model(bb, train.classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=task.loss(train.classes, train),
                  metrics=task.metrics(train.classes), run_eagerly=True)
    history = model.fit(task.make_tf_dataset(train, batch_size=4, training=True), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["miou"][0] <= 1.0
    test = task.load_dataset(shapes, split="test")
    scores = task.evaluate(model, test, tmp_path, batch_size=3)
    assert 0.0 <= scores["miou"] <= 1.0 and 0.0 <= scores["pixel_accuracy"] <= 1.0
    assert scores["num_pixels"] == 4 * 32 * 32
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert np.sum(report["confusion_matrix"]) == 4 * 32 * 32
    assert set(report["per_class"]) == set(train.classes)
    for name in ("confusion_matrix.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # per-class Dice for every class, and the foreground means that leave background out
    assert {f"dice/{c}" for c in train.classes} <= set(scores)
    fg = [report["per_class"][c]["dice"] for c in ("circle", "rectangle", "triangle")
          if c in report["per_class"] and report["per_class"][c]["dice"] is not None]
    if fg:
        assert scores["mean_dice_foreground"] == pytest.approx(np.mean(fg))


def test_a_split_folder_finds_the_class_map_at_the_root_or_takes_the_models_classes(shapes,
                                                                                   tmp_path):
    import shutil

    task = SegmentationTask(SegmentationConfig(image_size=32))
    classes = task.load_dataset(shapes, split="train").classes
    split_only = task.load_dataset(shapes / "test")  # classes.yaml sits at the dataset root
    assert split_only.classes == classes and len(split_only) == 4
    bare = tmp_path / "bare_test"
    shutil.copytree(shapes / "test", bare)  # no classes.yaml anywhere near
    with pytest.raises(Exception, match="no class map found"):
        task.load_dataset(bare)
    assert task.load_dataset(bare, classes=classes).classes == list(classes)  # the model's


def _probs(h, w, winner):
    p = np.full((h, w, 3), 0.1, np.float32)
    p[..., winner] = 0.8
    return p


def test_postprocess_resizes_to_the_image_and_counts_areas():
    task = SegmentationTask(SegmentationConfig(image_size=32))
    raw = _probs(8, 8, 0)
    raw[:, 4:] = _probs(8, 4, 2)
    pred = task.postprocess({"probabilities": raw}, {"height": 30, "width": 40}, CLASSES)
    assert pred.mask.shape == (30, 40) and pred.mask.dtype == np.uint8
    assert set(np.unique(pred.mask)) == {0, 2}
    assert (pred.mask[:, :18] == 0).all() and (pred.mask[:, 22:] == 2).all()
    assert sum(pred.fractions) == pytest.approx(1.0)
    assert pred.fractions[2] == pytest.approx(0.5, abs=0.05) and pred.fractions[1] == 0
    with pytest.raises(Exception, match="Received: shape=\\(8, 8, 2\\)"):
        task.postprocess({"probabilities": raw[..., :2]}, {}, CLASSES)


def test_temporal_smoothing_lives_in_the_per_source_state():
    from visionsuite.specs import InputSpec

    task = SegmentationTask(SegmentationConfig(image_size=32, smoothing=0.8))
    spec = InputSpec.image(32)
    meta = {"height": 4, "width": 4, "source": "cam0"}
    cam0 = task.new_state("cam0", spec, CLASSES)
    first = cam0.merge({"probabilities": _probs(4, 4, 1)}, meta)
    assert (first.mask == 1).all()
    flicker = np.full((4, 4, 3), 0.1, np.float32)
    flicker[..., 2] = 0.55
    flicker[..., 1] = 0.35  # a one-frame flicker towards class 2
    assert (cam0.merge({"probabilities": flicker}, meta).mask == 1).all()  # smoothed away
    cam1 = task.new_state("cam1", spec, CLASSES)
    assert (cam1.merge({"probabilities": flicker}, meta).mask == 2).all()  # its own state
    restarted = task.new_state("cam0", spec, CLASSES)  # the engine's new state on reconnect
    assert (restarted.merge({"probabilities": flicker}, meta).mask == 2).all()
    plain = SegmentationTask(SegmentationConfig(image_size=32)).new_state("cam0", spec, CLASSES)
    plain.merge({"probabilities": _probs(4, 4, 1)}, meta)
    assert (plain.merge({"probabilities": flicker}, meta).mask == 2).all()  # off by default


def test_render_overlays_classes_and_leaves_background(tmp_path):
    task = SegmentationTask(SegmentationConfig(image_size=32, alpha=0.6))
    frame = np.full((120, 160, 3), 100, np.uint8)
    raw = _probs(16, 16, 0)
    raw[8:, 8:] = _probs(8, 8, 1)
    pred = task.postprocess({"probabilities": raw}, {"height": 120, "width": 160}, CLASSES)
    out = task.render(frame, pred)
    assert out.shape == frame.shape and out is not frame
    assert (frame == 100).all()  # the input is not modified
    assert not np.array_equal(out[100, 140], frame[100, 140])  # class "a" painted
    assert np.array_equal(out[100, 20], frame[100, 20])  # background left clear
    assert not np.array_equal(out[10, 10], frame[10, 10])  # legend top-left
    clear = SegmentationTask(SegmentationConfig(image_size=32, alpha=0.0, legend=False))
    assert np.array_equal(clear.render(frame, pred), frame)


def test_to_record_and_mask_png_written_by_the_mask_sink(tmp_path):
    from visionsuite.streams.pipeline import StreamResult

    task = SegmentationTask(SegmentationConfig(image_size=32, mask_dir=str(tmp_path / "masks")))
    raw = _probs(8, 8, 0)
    raw[:2] = _probs(2, 8, 2)
    pred = task.postprocess({"probabilities": raw}, {"height": 8, "width": 8}, CLASSES)
    record = task.to_record(pred)
    json.dumps(record)
    assert record["fractions"] == {"background": 0.75, "a": 0.0, "b": 0.25}
    assert record["dominant"] == "b"
    [sink] = task.sinks()
    sink.write(StreamResult("/v/clip.mp4", 0, 7, 0.7, pred, record, 0.0))
    path = Path(record["mask"])
    assert path.name == "clip_000007.png"
    cmap = readers.ClassMap.from_names(CLASSES)
    assert np.array_equal(readers.read_mask(path, cmap), pred.mask)  # palette PNG of indices
