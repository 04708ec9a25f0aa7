"""Inference runtimes on a tiny classifier: Keras tf.function, SavedModel and TFLite agree;
auto picks the cached fp32 TFLite conversion on CPU and rebuilds it when the model changes;
metadata travels inside every format."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from visionsuite.errors import ModelError, UsageError
from visionsuite.models import ModelMetadata, save_keras_model

SIZE = 32
CLASSES = ("cat", "dog", "bird")


def tiny_classifier(path, *, task="classification", seed=0, classes=CLASSES):
    """A ~1k-parameter classifier with confident (spread-out) outputs, saved with metadata."""
    import keras

    from visionsuite.backbones.registry import build_backbone
    from visionsuite_tasks.classification import ClassificationConfig, ClassificationTask

    keras.utils.set_random_seed(seed)
    cls_task = ClassificationTask(ClassificationConfig(image_size=SIZE, top_k=2))
    model = cls_task.build_model(build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8)),
                                 classes)
    # spread the outputs: random logits centred over a few colour images, so that
    # different inputs get different classes
    dense = model.get_layer("logits")
    kernel, _ = dense.get_weights()
    kernel = np.random.default_rng(seed).normal(0, 1, kernel.shape).astype("float32")
    features = keras.Model(model.input, dense.input)(colour_batch()).numpy()
    logits = features @ kernel
    scale = 4.0 / (logits.std() + 1e-6)
    dense.set_weights([kernel * scale, (-logits.mean(0) * scale).astype("float32")])
    meta = ModelMetadata(task, tuple(classes), SIZE, "simple_cnn",
                         {"image_size": SIZE, "top_k": 2})
    return save_keras_model(model, path, meta)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    tiny_classifier(folder / "tiny.keras")
    return folder


def colour_batch():
    """Solid colours plus noise: inputs the tiny model tells apart."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]
    noise = np.random.default_rng(1).uniform(0, 40, (5, SIZE, SIZE, 3))
    return (np.array(colours, np.float32)[:, None, None, :] * 0.8 + noise).astype(np.float32)


@pytest.fixture(scope="module")
def batch():
    return colour_batch()


def test_runtimes_agree_and_carry_metadata(model_dir, batch):
    from visionsuite.runtime import load_runtime

    outs = {}
    for name in ("keras", "savedmodel", "tflite"):
        model = load_runtime(model_dir / "tiny.keras", runtime=name, batch_size=2)
        assert model.runtime == name
        assert model.metadata.task == "classification"
        assert model.metadata.classes == CLASSES and model.input_size == SIZE
        outs[name] = model(batch)["probabilities"]  # 5 inputs at batch 2: two full chunks and a padded one
        assert outs[name].shape == (5, 3)
    np.testing.assert_allclose(outs["savedmodel"], outs["keras"], atol=1e-5)
    np.testing.assert_allclose(outs["tflite"], outs["keras"], atol=1e-4)
    assert len(set(np.argmax(outs["keras"], -1).tolist())) > 1  # a non-trivial classifier
    # the batch padding does not leak into results: one at a time gives the same numbers
    single = load_runtime(model_dir / "tiny.keras", runtime="tflite")
    np.testing.assert_allclose(single(batch[4:5])["probabilities"][0], outs["tflite"][4], atol=1e-6)


def test_auto_uses_a_cached_fp32_tflite_beside_the_model(model_dir, batch):
    from visionsuite.runtime import load_runtime

    model = load_runtime(model_dir / "tiny.keras")
    assert model.runtime == "tflite"
    cached = model_dir / "tiny.fp32.tflite"
    assert model.source == str(cached) and cached.is_file()
    before = cached.stat().st_mtime_ns
    assert load_runtime(model_dir / "tiny.keras").source == str(cached)
    assert cached.stat().st_mtime_ns == before  # reused, not rebuilt


def test_cache_is_rebuilt_when_the_model_changes(tmp_path, batch):
    from visionsuite.runtime import load_runtime

    path = tiny_classifier(tmp_path / "m.keras", seed=0)
    first = load_runtime(path)(batch)["probabilities"]
    tiny_classifier(path, seed=1)  # retrained: same file name, new weights
    second = load_runtime(path)
    assert second.source == str(tmp_path / "m.fp32.tflite")
    assert not np.allclose(second(batch)["probabilities"], first, atol=1e-3)
    np.testing.assert_allclose(second(batch)["probabilities"],
                               load_runtime(path, runtime="keras")(batch)["probabilities"],
                               atol=1e-4)


def test_tflite_metadata_is_embedded_and_sidecar_is_a_fallback(model_dir, tmp_path, batch):
    from visionsuite.runtime import load_runtime
    from visionsuite.runtime.metadata import read_tflite_metadata

    load_runtime(model_dir / "tiny.keras")  # makes tiny.fp32.tflite
    copy = tmp_path / "elsewhere.tflite"
    shutil.copy(model_dir / "tiny.fp32.tflite", copy)  # no sidecar: metadata is inside
    meta = read_tflite_metadata(copy)
    assert meta.task == "classification" and meta.classes == CLASSES
    assert meta.extra["format"] == "tflite" and len(meta.extra["source_sha256"]) == 64
    np.testing.assert_allclose(
        load_runtime(copy)(batch)["probabilities"],
        load_runtime(model_dir / "tiny.keras", runtime="keras")(batch)["probabilities"], atol=1e-4)

    # a .tflite made by another tool: no embedded metadata -> sidecar <model>.tflite.json
    import tensorflow as tf

    inp = tf.keras.Input((SIZE, SIZE, 3))
    plain = tf.keras.Model(inp, tf.keras.layers.Dense(2, activation="softmax")(
        tf.keras.layers.GlobalAveragePooling2D()(inp)))
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(tf.lite.TFLiteConverter.from_keras_model(plain).convert())
    with pytest.raises(ModelError, match="no visionsuite metadata"):
        load_runtime(foreign)
    (tmp_path / "foreign.tflite.json").write_text(
        ModelMetadata("classification", ("x", "y"), SIZE).to_json())
    assert load_runtime(foreign)(batch)["probabilities"].shape == (5, 2)


def test_savedmodel_metadata_in_assets(model_dir):
    from visionsuite.runtime import load_runtime
    from visionsuite.runtime.metadata import read_metadata

    model = load_runtime(model_dir / "tiny.keras", runtime="savedmodel")
    folder = model_dir / "tiny.savedmodel"
    assert model.source == str(folder)
    assert (folder / "assets" / "visionsuite.json").is_file()
    assert read_metadata(folder).classes == CLASSES
    assert load_runtime(folder).runtime == "savedmodel"  # auto for a SavedModel folder


def test_bad_references_and_runtime_choices(model_dir, tmp_path):
    from visionsuite.runtime import load_runtime

    with pytest.raises(ModelError, match="model file not found"):
        load_runtime(tmp_path / "missing.keras")
    with pytest.raises(UsageError, match="unknown runtime 'tensorrt'"):
        load_runtime(model_dir / "tiny.keras", runtime="tensorrt")
    with pytest.raises(UsageError, match="the onnx runtime runs .onnx files"):
        load_runtime(model_dir / "tiny.keras", runtime="onnx")
    with pytest.raises(UsageError, match="no ImageNet classifier for 'mobilenet_v9'"):
        load_runtime("imagenet:mobilenet_v9")
    load_runtime(model_dir / "tiny.keras")
    with pytest.raises(UsageError, match="cannot run with the keras runtime"):
        load_runtime(model_dir / "tiny.fp32.tflite", runtime="keras")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ModelError):
        load_runtime(broken)
    with pytest.raises(ModelError, match="unsupported model format"):
        (tmp_path / "m.pt").write_bytes(b"x")
        load_runtime(tmp_path / "m.pt")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="m.onnx"):  # unreadable, or the extra is missing
        load_runtime(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"expected a batch of shape \(N, 32, 32, 3\)"):
        load_runtime(model_dir / "tiny.keras")(np.zeros((1, 16, 16, 3), np.float32))
