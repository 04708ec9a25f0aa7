"""3D U-Net: declared levels match the built encoder, outputs, saving, Dice+CE loss, and a tiny
config that learns a synthetic 32^3 task."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite_tasks.medical import metrics
from visionsuite_tasks.medical import models as M

TINY = dict(widths=(4, 8, 16), blocks=1)


def test_declared_levels_match_the_built_encoder():
    strides = ((1, 1, 1), (1, 2, 2), (2, 2, 2))
    declared = M.unet3d_levels((4, 8, 16), strides)
    assert [(lv.name, lv.stride, lv.channels) for lv in declared] == [
        ("L0", (1, 1, 1), 4), ("L1", (1, 2, 2), 8), ("L2", (2, 4, 4), 16)]
    assert M.unet3d_divisor((4, 8, 16), strides) == (2, 4, 4)
    encoder = M.build_encoder3d((8, 16, 16, 1), widths=(4, 8, 16), strides=strides, blocks=1)
    x = np.zeros((1, 8, 16, 16, 1), np.float32)
    feats = encoder(x)
    assert sorted(feats) == ["L0", "L1", "L2"]
    for lv in declared:
        expected = (1,) + tuple(n // s for n, s in zip((8, 16, 16), lv.stride)) + (lv.channels,)
        assert tuple(feats[lv.name].shape) == expected


def test_unet_outputs_deep_supervision_and_saving(tmp_path):
    model = M.build_unet3d((16, 16, 16, 1), 3, deep_supervision=True, norm="batch", **TINY)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    out = model(x, training=False)
    assert sorted(out) == ["aux_1", "probabilities"]
    for v in out.values():
        v = np.asarray(v)
        assert v.shape == (2, 16, 16, 16, 3)
        np.testing.assert_allclose(v.sum(-1), 1.0, atol=1e-5)
    plain = M.inference_model(model)
    assert list(plain.output) == ["probabilities"]
    model2 = M.build_unet3d((None, None, None, 1), 2, **TINY)  # any multiple of 4
    assert np.asarray(model2(np.zeros((1, 8, 12, 20, 1), np.float32))["probabilities"]).shape \
        == (1, 8, 12, 20, 2)
    path = tmp_path / "unet.keras"
    model2.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    probe = np.random.default_rng(1).normal(size=(1, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(probe)["probabilities"]),
                               np.asarray(model2(probe)["probabilities"]), atol=1e-6)
    losses, weights = M.deep_supervision_losses(model)
    assert weights == {"probabilities": 1.0, "aux_1": 0.5} and set(losses) == set(weights)


def test_bad_configs_are_one_line_errors():
    with pytest.raises(UsageError, match="num_classes counts the background"):
        M.build_unet3d((8, 8, 8, 1), 1)
    with pytest.raises(UsageError, match=r"one \(d, h, w\) of 1s and 2s per level"):
        M.unet3d_levels((4, 8), ((1, 1, 1), (3, 2, 2)))
    with pytest.raises(UsageError, match="norm must be one of"):
        M.build_encoder3d(widths=(4,), blocks=1, norm="layer")


def _loss(y, p, **kw):
    return float(keras.ops.convert_to_numpy(M.DiceCELoss(**kw)(y, p)))


def test_dice_ce_loss_by_hand_in_2d_and_3d():
    # 2D: one image of 2x2 pixels, 2 classes.
    y = np.array([[[0, 1], [1, 1]]])
    p = np.array([[[[0.8, 0.2], [0.4, 0.6]], [[0.1, 0.9], [0.5, 0.5]]]], np.float32)
    ce = -np.mean(np.log([0.8, 0.6, 0.9, 0.5]))
    inter = 0.6 + 0.9 + 0.5
    dice1 = 2 * inter / ((0.2 + 0.6 + 0.9 + 0.5) + 3)
    assert _loss(y, p) == pytest.approx(ce + 1 - dice1, rel=1e-5)
    dice0 = 2 * 0.8 / ((0.8 + 0.4 + 0.1 + 0.5) + 1)
    assert _loss(y, p, include_background=True) == pytest.approx(
        ce + 1 - (dice0 + dice1) / 2, rel=1e-5)
    # ignored pixel: the (1, 1) pixel stops counting in both terms
    y_ign = np.array([[[0, 1], [1, 255]]])
    ce_i = -np.mean(np.log([0.8, 0.6, 0.9]))
    dice_i = 2 * 1.5 / ((0.2 + 0.6 + 0.9) + 2)
    assert _loss(y_ign, p, ignore_index=255) == pytest.approx(ce_i + 1 - dice_i, rel=1e-5)
    # 3D: a perfect one-hot prediction gives (almost) zero
    y3 = np.random.default_rng(0).integers(0, 3, (2, 4, 4, 4))
    p3 = np.eye(3, dtype=np.float32)[y3]
    assert _loss(y3, p3) < 1e-4
    assert _loss(y3[..., None], 0.9 * p3 + 0.1 / 3) > 0.05  # trailing label axis accepted


def _spheres(n, rng, size=32):
    z, y, x = np.meshgrid(*(np.arange(size),) * 3, indexing="ij")
    images, labels = [], []
    for _ in range(n):
        c = rng.uniform(10, 22, 3)
        r = rng.uniform(5, 9)
        lab = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r * r).astype(np.uint8)
        images.append((lab + rng.normal(0, 0.6, lab.shape))[..., None].astype(np.float32))
        labels.append(lab)
    return np.stack(images), np.stack(labels)


def test_tiny_unet_learns_spheres_in_32_cubed_volumes():
    rng = np.random.default_rng(0)
    x, y = _spheres(4, rng)
    xv, yv = _spheres(2, rng)
    keras.utils.set_random_seed(0)
    model = M.build_unet3d((32, 32, 32, 1), 2, norm="instance", **TINY)
    model.compile(keras.optimizers.Adam(1e-2), loss={"probabilities": M.DiceCELoss()},
                  jit_compile=False)
    before = metrics.dice(np.asarray(model(xv)["probabilities"]).argmax(-1) == 1, yv == 1)
    history = model.fit(x, {"probabilities": y}, batch_size=2, epochs=5, verbose=0)
    loss = history.history["loss"]
    after = metrics.dice(np.asarray(model(xv)["probabilities"]).argmax(-1) == 1, yv == 1)
    assert loss[-1] < 0.85 * loss[0]
    assert after > 0.5 and after > before + 0.3
