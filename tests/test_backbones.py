"""Backbone registry: conformance of every registered backbone, simple_cnn options, and the
conformance helpers themselves (on an out-of-tree backbone family)."""

from __future__ import annotations

import dataclasses
import importlib
import textwrap

import numpy as np
import pytest

from visionsuite.backbones import build_backbone, get_backbone_entry, list_backbones
from visionsuite.backbones.registry import Backbone, Preprocessing
from visionsuite.errors import UsageError
from visionsuite.testing import ConformanceError, _check_normalization, check_backbone

EXPECTED = {"simple_cnn", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
            "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_v2_b0",
            "efficientnet_v2_b1", "efficientnet_v2_b2", "resnet50", "convnext_tiny",
            "efficientnet_lite0"}


def test_registry_lists_every_family():
    names = {entry.name for entry in list_backbones()}
    assert EXPECTED <= names


@pytest.mark.parametrize("name", sorted(e.name for e in list_backbones()))
def test_backbone_conformance(name):
    bb = check_backbone(name, input_size=64)
    assert [lv.stride for lv in bb.spec.levels] == [4, 8, 16, 32]


def test_mobilenet_width_and_minimalistic_levels():
    bb = check_backbone("mobilenet_v3_large", 64, arch={"alpha": 0.75, "minimalistic": True})
    assert [lv.channels for lv in bb.spec.levels] == [24, 32, 88, 720]


def test_mobilenet_imagenet_weights_need_a_trained_width():
    with pytest.raises(UsageError, match=r"alpha in \(0.75, 1.0\).*Received: alpha=0.5"):
        build_backbone("mobilenet_v3_small", (64, 64, 3), weights="imagenet", alpha=0.5)


def test_unknown_backbone_suggests_names():
    with pytest.raises(UsageError, match="Did you mean: efficientnet_b3"):
        build_backbone("efficientnet_b9")  # b3, b2, b1 are closest


def test_unknown_keyword_lists_allowed_ones():
    with pytest.raises(UsageError, match=r"allowed: alpha, minimalistic\. Received: depth=3"):
        build_backbone("mobilenet_v3_small", (64, 64, 3), depth=3)


def test_stochastic_depth_keywords_reach_the_model():
    model = build_backbone("efficientnet_b0", (64, 64, 3), drop_connect_rate=0.5).model
    rates = [layer.rate for layer in model.layers if layer.name.endswith("_drop")]
    assert rates and max(rates) == pytest.approx(0.5 * 14 / 16)  # block6d: the last residual
    with pytest.raises(UsageError, match="Received: drop_connect_rate=1.5"):
        build_backbone("efficientnet_b0", (64, 64, 3), drop_connect_rate=1.5)


# === simple_cnn options ===
TINY = dict(widths=(4, 8, 8), depth=1)


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("activation,layer_type", [
    ("relu", "Activation"), ("elu", "Activation"), ("leaky_relu", "LeakyReLU"), ("relu6", "ReLU")])
def test_simple_cnn_activations(activation, layer_type):
    bb = build_backbone("simple_cnn", (32, 32, 3), activation=activation, **TINY)
    assert layer_type in _layer_types(bb.model)
    x = np.linspace(0, 255, 32 * 32 * 3, dtype="float32").reshape(1, 32, 32, 3)
    assert set(bb.model(x)) == {"P2", "P3"}


def test_simple_cnn_batch_norm_dropout_and_strided_convs():
    plain = build_backbone("simple_cnn", (32, 32, 3), batch_norm=False, **TINY).model
    assert "BatchNormalization" not in _layer_types(plain)
    assert all(layer.use_bias for layer in plain.layers if type(layer).__name__ == "Conv2D")
    dropped = build_backbone("simple_cnn", (32, 32, 3), dropout=0.25, **TINY).model
    assert [layer.rate for layer in dropped.layers if type(layer).__name__ == "Dropout"] == [0.25] * 3
    strided = build_backbone("simple_cnn", (32, 32, 3), pool="none", **TINY)
    assert not any("Pooling" in t for t in _layer_types(strided.model))
    assert [conv.strides for conv in strided.model.layers if type(conv).__name__ == "Conv2D"] \
        == [(2, 2)] * 3
    assert {k: tuple(v.shape) for k, v in strided.model.output.items()} == \
        {"P2": (None, 8, 8, 8), "P3": (None, 4, 4, 8)}


@pytest.mark.parametrize("kwargs,bad", [
    (dict(activation="gelu"), "activation='gelu'"),
    (dict(pool="median"), "pool='median'"),
    (dict(dropout=1.0), "dropout=1.0"),
    (dict(strides=3), "strides=(3, 3, 3)"),
    (dict(kernel_sizes=(3, 3)), "kernel_sizes=(3, 3)"),
    (dict(widths=(4, 8, 8), strides=(1, 1, 2)), "strides=(1, 1, 2)"),
    (dict(padding="full"), "padding='full'"),
])
def test_simple_cnn_bad_arguments(kwargs, bad):
    args = {**TINY, **kwargs}
    with pytest.raises(UsageError, match="Received:") as info:
        build_backbone("simple_cnn", (32, 32, 3), **args)
    assert bad in str(info.value)


# === the conformance helpers on an outside backbone family ===
OUTSIDE_FAMILY = textwrap.dedent('''
    import keras
    from visionsuite.backbones.layers import PixelNormalization
    from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing

    SPEC = Preprocessing(scale=1 / 255)

    def build(input_shape, weights=None, *, width=8, out_channels=None):
        inputs = keras.Input(input_shape)
        x = PixelNormalization.from_spec(SPEC)(inputs)
        p2 = keras.layers.Conv2D(width, 3, strides=4, padding="same")(x)
        p3 = keras.layers.Conv2D(out_channels or 2 * width, 3, strides=2, padding="same")(p2)
        return keras.Model(inputs, {"P2": p2, "P3": p3})

    def levels(width=8, out_channels=None):
        return (FeatureLevel("P2", 4, width), FeatureLevel("P3", 8, 2 * width))

    GOOD = BackboneEntry("outside_good", build, levels, SPEC, dict(width=8, out_channels=None))
    LYING = BackboneEntry("outside_lying", lambda s, w=None, **a: build(s, w, out_channels=5, **a),
                          levels, SPEC, dict(width=8))
''')


@pytest.fixture()
def outside_family(tmp_path, monkeypatch):
    (tmp_path / "vs_outside_backbones.py").write_text(OUTSIDE_FAMILY)
    dist = tmp_path / "vs_outside_backbones-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vs-outside-backbones\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[visionsuite.backbones]\ngood = vs_outside_backbones:GOOD\n"
        "lying = vs_outside_backbones:LYING\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    importlib.invalidate_caches()


def test_outside_backbone_passes_conformance(outside_family):
    assert get_backbone_entry("outside_good").arch_defaults == {"width": 8, "out_channels": None}
    bb = check_backbone("outside_good", 32, arch={"width": 4})
    assert [lv.channels for lv in bb.spec.levels] == [4, 8]


def test_conformance_catches_wrong_channels(outside_family):
    with pytest.raises(ConformanceError, match=r"P3 must be .*\(2, 4, 4, 16\).*Received: \(2, 4, 4, 5\)"):
        check_backbone("outside_lying", 32)


def test_conformance_catches_wrong_declared_preprocessing():
    bb = build_backbone("mobilenet_v3_small", (32, 32, 3))
    wrong = Backbone(bb.model, dataclasses.replace(bb.spec, preprocessing=Preprocessing()))
    images = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    _check_normalization("mobilenet_v3_small", bb, images)  # the declared one matches
    with pytest.raises(ConformanceError, match="normalisation inside the model differs"):
        _check_normalization("mobilenet_v3_small", wrong, images)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_b0"])
def test_backbone_survives_keras_save_and_safe_load(name, tmp_path):
    import keras

    model = build_backbone(name, (64, 64, 3)).model
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    before, after = model(images), again(images)
    for key in before:
        np.testing.assert_allclose(np.asarray(after[key]), np.asarray(before[key]), atol=1e-5)
