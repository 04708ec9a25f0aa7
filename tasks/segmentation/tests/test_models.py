"""Segmentation heads on a registry backbone's levels: shapes, probabilities, dtypes, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionsuite.backbones import build_backbone
from visionsuite.errors import UsageError
from visionsuite.models import ModelMetadata, load_keras_model, save_keras_model
from visionsuite_tasks.segmentation import SegmentationConfig, SegmentationTask
from visionsuite_tasks.segmentation.models import HEADS, build_head, set_bn_momentum

SIZE = 64
ARCH = dict(widths=(8, 8, 16, 16, 16), depth=1)


@pytest.fixture(scope="module")
def backbone():
    bb = build_backbone("simple_cnn", (SIZE, SIZE, 3), **ARCH)
    assert [lv.name for lv in bb.spec.levels] == ["P2", "P3", "P4", "P5"]
    return bb


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("head", HEADS)
def test_heads_output_probabilities_at_input_resolution(backbone, images, head):
    model = build_head(head, backbone, 5, channels=8, output_stride=16, dropout=0.1)
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    assert probs.shape == (2, SIZE, SIZE, 5)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    assert model.input.name == "image" or model.inputs[0].name == "image"


@pytest.mark.parametrize("output_stride", [8, 32])
def test_deeplab_output_stride_changes_the_aspp_resolution(backbone, output_stride):
    model = build_head("deeplabv3_plus", backbone, 3, channels=8, output_stride=output_stride,
                       dropout=0.0)
    aspp = model.get_layer("aspp_1x1_conv").output
    assert aspp.shape[1] == SIZE // output_stride
    assert model.output.shape == (None, SIZE, SIZE, 3)


def test_bad_options_are_rejected(backbone):
    with pytest.raises(UsageError, match="Received: output_stride=12"):
        SegmentationConfig(output_stride=12)
    with pytest.raises(UsageError, match="Received: head='segformer'"):
        build_head("segformer", backbone, 3, channels=8, output_stride=16, dropout=0.0)
    task = SegmentationTask(SegmentationConfig(image_size=96))
    with pytest.raises(UsageError, match="image_size=96"):
        task.build_model(backbone, ["a", "b"])


def test_mixed_precision_keeps_float32_probabilities():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        bb = build_backbone("simple_cnn", (SIZE, SIZE, 3), **ARCH)
        model = build_head("lraspp", bb, 3, channels=8, output_stride=16, dropout=0.0)
        assert model.get_layer("lraspp_conv_conv").compute_dtype == "float16"
        assert model.output.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_task_model_saves_and_loads_in_safe_mode(backbone, images, tmp_path):
    task = SegmentationTask(SegmentationConfig(image_size=SIZE, head="deeplabv3_plus",
                                               head_channels=8, bn_momentum=0.9))
    model = task.build_model(backbone, ["background", "a", "b"])
    assert set_bn_momentum(model, 0.9) > 0
    meta = ModelMetadata(task="segmentation", classes=("background", "a", "b"), input_size=SIZE,
                         backbone="simple_cnn")
    path = save_keras_model(model, tmp_path / "seg.keras", meta)
    loaded = load_keras_model(path)  # safe_mode=True: every custom layer is registered
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)),
                               keras.ops.convert_to_numpy(model(images)), atol=1e-5)
    bns = [l for l in loaded.get_layer(backbone.model.name).layers
           if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(l.momentum == 0.9 for l in bns)


def test_saved_model_loads_in_a_fresh_process(backbone, tmp_path):
    """Loading must not depend on the heads' module having been imported already: the task
    declares its Keras modules (``keras_modules``) and the core imports them first."""
    import subprocess
    import sys

    task = SegmentationTask(SegmentationConfig(image_size=SIZE, head="lraspp", head_channels=8))
    model = task.build_model(backbone, ["background", "a"])
    meta = ModelMetadata(task="segmentation", classes=("background", "a"), input_size=SIZE)
    path = save_keras_model(model, tmp_path / "seg.keras", meta)
    code = ("import sys; from visionsuite.models import load_keras_model; "
            "m = load_keras_model(sys.argv[1]); print(tuple(m.output.shape))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert f"(None, {SIZE}, {SIZE}, 2)" in proc.stdout
