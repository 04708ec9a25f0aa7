"""Classification task: pipeline, model head, training steps, evaluation, inference outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from visionsuite.errors import ModelError, UsageError
from visionsuite.task import Dataset, Sample
from visionsuite_tasks.classification import (
    ClassificationConfig,
    ClassificationPrediction,
    ClassificationTask,
)
from visionsuite_tasks.classification.metrics import classification_report

SIZE = 32
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # RGB; class i = colour i


def _colour_dataset(n_per_class=4):
    rng = np.random.default_rng(0)
    samples = []
    for c, colour in enumerate(COLOURS):
        for _ in range(n_per_class):
            img = np.zeros((40, 48, 3), np.uint8)
            img[:] = colour
            img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255)
            samples.append(Sample(img.astype(np.uint8), c))
    return Dataset(["red", "green", "blue"], samples)


@pytest.fixture(scope="module")
def task():
    return ClassificationTask(ClassificationConfig(image_size=SIZE, augment=1.0, dropout=0.1,
                                                   label_smoothing=0.1, top_k=2))


@pytest.fixture(scope="module")
def trained(task):
    """A tiny simple_cnn classifier, fitted for a few steps (built once per module)."""
    import keras

    from visionsuite.backbones import build_backbone

    keras.utils.set_random_seed(0)
    data = _colour_dataset()
    backbone = build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8), depth=1)
    model = task.build_model(backbone, data.classes)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=task.loss(data.classes),
                  metrics=task.metrics(data.classes), jit_compile=False)
    history = model.fit(task.make_tf_dataset(data, batch_size=6, training=True), epochs=3,
                        shuffle=False, verbose=0)
    return model, data, history


def test_config_validation():
    with pytest.raises(UsageError, match=r"dropout must be in \[0, 1\). Received: dropout=1.5"):
        ClassificationConfig(dropout=1.5)
    with pytest.raises(UsageError, match="label_smoothing"):
        ClassificationConfig(label_smoothing=-0.1)
    from visionsuite.config import build_config

    with pytest.raises(UsageError, match="Did you mean: dropout"):
        build_config(ClassificationConfig, {"dropuot": 0.2})
    with pytest.raises(UsageError, match="mode must be one of"):
        build_config(ClassificationConfig, {"mode": "regresion"})


def test_pipeline_keeps_labels_with_augmentation(task):
    data = _colour_dataset(6)
    ds = task.make_tf_dataset(data, batch_size=5, training=True, seed=3)
    seen = 0
    for x, y in ds:
        assert x.dtype == "float32" and x.shape[1:] == (SIZE, SIZE, 3)
        assert y.dtype == "float32" and y.shape[1:] == (3,)
        x, y = x.numpy(), y.numpy()
        assert 0.0 <= x.min() and x.max() <= 255.0  # RGB pixels, not normalised
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)  # one-hot
        # the dominant channel survives crop, flip, jitter and affine: it is the label
        np.testing.assert_array_equal(x.mean(axis=(1, 2)).argmax(axis=1), y.argmax(axis=1))
        seen += len(x)
    assert seen == 18


def test_model_head(task, trained):
    model, data, _ = trained
    assert model.input.name.startswith("image") or model.inputs[0].name == "image"
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    assert tuple(model.output.shape) == (None, 3)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.1)
    out = model.predict(np.zeros((2, SIZE, SIZE, 3), np.float32), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    names = [m.name for m in task.metrics(data.classes)]
    assert names == ["accuracy"]  # no top-5 with 3 classes
    assert [m.name for m in task.metrics([str(i) for i in range(10)])] == ["accuracy",
                                                                            "top5_accuracy"]
    assert task.loss(data.classes).get_config()["label_smoothing"] == pytest.approx(0.1)


def test_mixed_precision_output_is_float32(task):
    import keras

    from visionsuite.backbones import build_backbone

    old = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = task.build_model(build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8),
                                                depth=1), ["a", "b"])
    finally:
        keras.config.set_dtype_policy(old)
    assert model.get_layer("logits").compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_backbone_size_mismatch(task):
    from visionsuite.backbones import build_backbone

    with pytest.raises(UsageError, match="image_size=32"):
        task.build_model(build_backbone("simple_cnn", (64, 64, 3), widths=(4, 8)), ["a", "b"])


def test_training_learns_and_evaluate_writes_report(task, trained, tmp_path):
    model, data, history = trained
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    scores = task.evaluate(model, data, tmp_path, batch_size=5)
    assert set(scores) >= {"accuracy", "macro_f1", "macro_precision", "macro_recall",
                           "num_samples"}
    assert scores["num_samples"] == 12 and scores["accuracy"] > 0.5
    png = tmp_path / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(png)).shape[0] > 200
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert set(report["per_class"]) == {"red", "green", "blue"}
    assert np.asarray(report["confusion_matrix"]).sum() == 12
    with pytest.raises(ModelError, match="3 outputs but the dataset has 2 classes"):
        task.evaluate(model, Dataset(["a", "b"], data.samples[:2]))


def test_saved_model_round_trip(task, trained, tmp_path):
    from visionsuite.models import ModelMetadata, load_keras_model, save_keras_model

    model, data, _ = trained
    path = save_keras_model(model, tmp_path / "m.keras",
                            ModelMetadata("classification", tuple(data.classes), SIZE,
                                          "simple_cnn"))
    loaded = load_keras_model(path)
    x = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_classification_report_numbers():
    classes = [f"c{i}" for i in range(6)]
    y_true = np.array([0, 1, 2, 3, 4, 5, 0, 1])
    probs = np.full((8, 6), 0.01)
    top1 = [0, 1, 2, 3, 4, 0, 1, 1]  # wrong at 5 (-> 0) and 6 (-> 1)
    for i, c in enumerate(top1):
        probs[i, c] = 0.9
    probs[5, 5] = 0.05  # second-best: inside the top-5
    report = classification_report(y_true, probs, classes)
    assert report["accuracy"] == pytest.approx(6 / 8)
    assert report["top5_accuracy"] == pytest.approx(8 / 8)
    assert report["per_class"]["c0"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                         "support": 2}
    assert report["per_class"]["c1"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["c5"]["recall"] == 0.0
    assert report["confusion_matrix"][5][0] == 1


def test_postprocess_render_record(task):
    classes = ["cat", "dog", "fox"]
    pred = task.postprocess({"probabilities": np.array([0.2, 0.1, 0.7], np.float32)}, {}, classes)
    assert isinstance(pred, ClassificationPrediction)
    assert pred.labels == ["fox", "cat"] and pred.indices == [2, 0]  # top_k=2
    assert pred.scores == pytest.approx([0.7, 0.2])
    record = task.to_record(pred)
    assert json.loads(json.dumps(record)) == {
        "label": "fox", "score": pytest.approx(0.7),
        "top_k": [{"label": "fox", "index": 2, "score": pytest.approx(0.7)},
                  {"label": "cat", "index": 0, "score": pytest.approx(0.2)}]}
    frame = np.full((240, 320, 3), 255, np.uint8)
    drawn = task.render(frame, pred)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert (frame == 255).all()  # the input frame is untouched
    box = drawn[8:30, 8:50]  # top-left: a dark box with light text on it
    assert (box == 32).all(axis=-1).mean() > 0.5 and (box > 200).all(axis=-1).any()
    assert (drawn[200:, 200:] == 255).all()  # nothing drawn elsewhere
    with pytest.raises(ModelError, match="4 scores for 3 classes"):
        task.postprocess({"probabilities": np.ones(4)}, {}, classes)


def test_regression_mode(tmp_path):
    import keras

    from visionsuite.backbones import build_backbone

    task = ClassificationTask(ClassificationConfig(image_size=SIZE, mode="regression",
                                                   regression_loss="huber", augment=0.0))
    rng = np.random.default_rng(0)
    samples = [Sample(np.full((20, 20, 3), v, np.uint8), float(v) / 255.0)
               for v in rng.integers(0, 255, 8)]
    data = Dataset(["value"], samples)
    x, y = next(iter(task.make_tf_dataset(data, batch_size=4, training=True)))
    assert y.shape == (4, 1) and y.dtype == "float32"
    model = task.build_model(build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8),
                                            depth=1), data.classes)
    assert tuple(model.output.shape) == (None, 1)
    assert isinstance(task.loss(data.classes), keras.losses.Huber)
    model.compile(optimizer="adam", loss=task.loss(data.classes), metrics=task.metrics(data.classes),
                  run_eagerly=True)
    logs = model.fit(task.make_tf_dataset(data, batch_size=4, training=True), epochs=1,
                     shuffle=False, verbose=0).history
    assert np.isfinite(logs["mae"][0])
    scores = task.evaluate(model, data, tmp_path)
    assert set(scores) == {"num_samples", "mae", "rmse", "r2"} and scores["rmse"] >= scores["mae"]
    assert not (tmp_path / "confusion_matrix.png").exists()
    pred = task.postprocess({"value": np.array([0.42])}, {}, data.classes)
    assert pred.value == pytest.approx(0.42) and task.to_record(pred) == {"value": pytest.approx(0.42)}
    drawn = task.render(np.zeros((64, 64, 3), np.uint8), pred)
    assert drawn.any()
