"""The YOLOv8-style detector: outputs, in-graph decoding, sizes, bad input, safe-mode saving,
mixed precision, and that it trains (bright rectangles on a dark background)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visionsuite.backbones import build_backbone
from visionsuite.errors import UsageError
from visionsuite_tasks.detection.losses import DetectionLoss, box_iou
from visionsuite_tasks.detection.models import (SIZES, Detector, DistanceDecode, build_detector,
                                                decode_distances, detector_size,
                                                inference_model, make_anchors)

H, W = 64, 96  # letterboxed, non-square
TINY_BACKBONE = dict(widths=(8, 16, 16, 32, 32), depth=1)
TINY = dict(size="n", width=0.0625)
ANCHORS = (H // 8) * (W // 8) + (H // 16) * (W // 16) + (H // 32) * (W // 32)
COLOURS = np.array([[255, 60, 60], [60, 255, 60], [60, 60, 255]], np.float32)


def rectangles(n, height=H, width=W, max_boxes=4, seed=0):
    """Bright rectangles (colour = class) on a dark noisy background, padded targets."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 30, (n, height, width, 3)).astype(np.float32)
    boxes = np.full((n, max_boxes, 4), -1, np.float32)
    classes = np.full((n, max_boxes), -1, np.float32)
    for i in range(n):
        for j in range(rng.integers(1, 3)):
            bw, bh = rng.integers(12, 32), rng.integers(12, 32)
            x1, y1 = rng.integers(0, width - bw), rng.integers(0, height - bh)
            c = rng.integers(0, 3)
            images[i, y1:y1 + bh, x1:x1 + bw] = COLOURS[c]
            boxes[i, j], classes[i, j] = [x1, y1, x1 + bw, y1 + bh], c
    return images, boxes, classes


def set_bn_momentum(model, momentum):
    """Faster BatchNorm statistics: a few dozen steps are enough for inference mode."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("simple_cnn", (H, W, 3), **TINY_BACKBONE)


@pytest.fixture(scope="module")
def detector(backbone):
    return build_detector(backbone, 3, **TINY)


@pytest.fixture(scope="module")
def images():
    return rectangles(2, seed=1)[0]


def test_outputs_are_named_decoded_and_float32(detector, images):
    out = detector(images, training=False)
    assert set(out) == {"boxes", "scores", "raw"}
    assert tuple(out["boxes"].shape) == (2, ANCHORS, 4)
    assert tuple(out["scores"].shape) == (2, ANCHORS, 3)
    assert tuple(out["raw"].shape) == (2, ANCHORS, 4 * 16 + 3)
    for value in out.values():
        assert value.dtype == "float32"
    scores = np.asarray(out["scores"])
    assert ((scores > 0) & (scores < 1)).all()
    # The prior bias: about 5 objects per image at the start.
    assert scores.mean() < 0.1
    # "boxes" is the decode of the distribution part of "raw"; "scores" the sigmoid of the rest.
    raw = np.asarray(out["raw"])
    points, strides = make_anchors((H, W))
    expected = np.asarray(decode_distances(raw[..., :64], points, strides))
    np.testing.assert_allclose(np.asarray(out["boxes"]), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw[..., 64:])), atol=1e-6)
    assert detector.image_size == (H, W) and detector.num_classes == 3
    assert detector.strides == (8, 16, 32) and detector.reg_max == 16


def test_anchor_points_are_cell_centres_level_by_level():
    points, strides = make_anchors((H, W))
    assert points.shape == (ANCHORS, 2) and strides.shape == (ANCHORS, 1)
    np.testing.assert_array_equal(points[0], [4, 4])
    np.testing.assert_array_equal(points[1], [12, 4])  # row-major: x runs first
    np.testing.assert_array_equal(points[W // 8], [4, 12])
    first_p4 = (H // 8) * (W // 8)
    np.testing.assert_array_equal(points[first_p4], [8, 8])
    np.testing.assert_array_equal(points[-1], [W - 16, H - 16])
    assert strides[0, 0] == 8 and strides[first_p4, 0] == 16 and strides[-1, 0] == 32


def test_decode_layer_turns_sharp_distributions_into_exact_boxes():
    layer = DistanceDecode((64, 64), reg_max=8)
    points, strides = make_anchors((64, 64))
    bins = np.array([1, 2, 3, 0])  # left, top, right, bottom, in stride units
    logits = np.full((1, len(points), 4, 8), -50.0, np.float32)
    logits[..., np.arange(4), bins] = 50.0
    boxes = np.asarray(layer(logits.reshape(1, len(points), 32)))[0]
    expected = np.concatenate([points - bins[:2] * strides, points + bins[2:] * strides], -1)
    np.testing.assert_allclose(boxes, expected, atol=1e-3)
    again = DistanceDecode.from_config(layer.get_config())
    assert again.get_config()["image_size"] == (64, 64) and again.reg_max == 8


def test_sizes_scale_neck_width_and_depth(backbone):
    assert detector_size("n") == dict(depth=0.33, width=0.25, max_channels=1024)
    assert set(SIZES) >= {"n", "s"}
    n = build_detector(backbone, 2, size="n")
    s = build_detector(backbone, 2, size="s")
    m = build_detector(backbone, 2, size="m", width=0.125)
    channels = [n.get_layer(f"neck_out{i}_cv2_conv").filters for i in (3, 4, 5)]
    assert channels == [64, 128, 256]  # YOLOv8n's neck
    assert [s.get_layer(f"neck_out{i}_cv2_conv").filters for i in (3, 4, 5)] == [128, 256, 512]
    assert s.count_params() > 2.5 * n.count_params()
    names = {layer.name for layer in m.layers}
    assert "neck_out3_m1_cv1_conv" in names and "neck_out3_m2_cv1_conv" not in names  # depth 2
    assert "neck_out3_m1_cv1_conv" not in {layer.name for layer in n.layers}  # depth 1
    light = build_detector(backbone, 2, size="n", separable_cls=True)
    assert isinstance(light.get_layer("head_p3_cls1_dwconv"), keras.layers.DepthwiseConv2D)
    assert light.count_params() < n.count_params()


def test_bad_arguments_fail_in_one_line(backbone, detector):
    with pytest.raises(UsageError, match="multiples of 32.*Received: input_shape=\\(80, 96, 3\\)"):
        build_detector(build_backbone("simple_cnn", (80, 96, 3), **TINY_BACKBONE), 3)
    shallow = build_backbone("simple_cnn", (64, 64, 3), widths=(8, 8, 8, 8), depth=1)
    with pytest.raises(UsageError, match="P3, P4, P5"):
        build_detector(shallow, 3)
    with pytest.raises(UsageError, match="Received: size='q'"):
        build_detector(backbone, 3, size="q")
    with pytest.raises(UsageError, match="Received: num_classes=0"):
        build_detector(backbone, 0)
    with pytest.raises(UsageError, match="Received: width=0"):
        build_detector(backbone, 3, width=0)
    with pytest.raises(UsageError, match="DetectionLoss"):
        detector.compile("adam", loss="mse")
    with pytest.raises(UsageError, match="Received: num_classes=4"):
        detector.compile("adam", loss=DetectionLoss(4))


def test_saves_and_loads_in_safe_mode(detector, images, tmp_path):
    path = tmp_path / "detector.keras"
    detector.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert isinstance(loaded, Detector)
    before, after = detector(images), loaded(images)
    for key in ("boxes", "scores", "raw"):
        np.testing.assert_allclose(np.asarray(before[key]), np.asarray(after[key]), atol=1e-4)
    # The reloaded model still trains with its loss (the default one when compiled bare).
    loaded.compile(keras.optimizers.Adam(1e-3))
    _, boxes, classes = rectangles(2, seed=1)
    value = loaded.compute_loss(images, {"boxes": boxes, "classes": classes}, after)
    assert np.isfinite(float(value)) and float(value) > 0


def test_inference_model_drops_the_training_output(detector, images):
    bare = inference_model(detector)
    out = bare(images)
    assert set(out) == {"boxes", "scores"}
    np.testing.assert_allclose(np.asarray(out["boxes"]), np.asarray(detector(images)["boxes"]),
                               atol=1e-4)
    assert bare.count_params() == detector.count_params()  # shared layers
    with pytest.raises(UsageError, match="not a detector"):
        inference_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_mixed_precision_keeps_float32_outputs(backbone):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        bb = build_backbone("simple_cnn", (64, 64, 3), **TINY_BACKBONE)
        model = build_detector(bb, 2, **TINY)
        assert model.get_layer("head_p3_box1_conv").compute_dtype == "float16"
        out = model(np.zeros((1, 64, 64, 3), np.float32))
        assert {keras.backend.standardize_dtype(v.dtype) for v in out.values()} == {"float32"}
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.slow  # ~40 s of CPU (minutes of wall time on a loaded 2-core VM)
def test_detector_trains_on_synthetic_rectangles():
    """fit() with the detection loss: the loss falls and, in inference mode, the top box of
    every training image overlaps one of its objects (IoU > 0.5) with the right class."""
    images, boxes, classes = rectangles(8, seed=0)
    keras.utils.set_random_seed(0)
    bb = build_backbone("simple_cnn", (H, W, 3), **TINY_BACKBONE)
    model = build_detector(bb, 3, **TINY)
    set_bn_momentum(model, 0.5)
    model.compile(keras.optimizers.Adam(5e-3), jit_compile=False)
    history = model.fit(images, {"boxes": boxes, "classes": classes}, batch_size=8, epochs=60,
                        verbose=0).history
    assert {"loss", "box_loss", "cls_loss", "dfl_loss"} <= set(history)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert history["box_loss"][-1] < 0.5 * history["box_loss"][0]
    out = model.predict(images, verbose=0)
    for i in range(len(images)):
        top = int(out["scores"][i].max(-1).argmax())
        real = classes[i] >= 0
        ious = np.asarray(box_iou(out["boxes"][i][top][None], boxes[i][real]))
        best = int(ious.argmax())
        assert ious[best] > 0.5, (i, ious)
        assert int(out["scores"][i][top].argmax()) == int(classes[i][real][best])


@pytest.mark.slow
def test_litert_export_gives_the_same_named_outputs(detector, images):
    """The inference model converts to TFLite with the outputs "boxes" and "scores" under
    their names, matching Keras (about 20 s of conversion on 2 cores)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    bare = inference_model(detector)
    data = tf.lite.TFLiteConverter.from_keras_model(bare).convert()
    runner = Interpreter(model_content=data).get_signature_runner()
    (name,) = runner.get_input_details()
    for image in images:
        out = runner(**{name: image[None]})
        assert set(out) == {"boxes", "scores"}
        want = bare(image[None])
        np.testing.assert_allclose(out["boxes"], np.asarray(want["boxes"]), atol=1e-3)
        np.testing.assert_allclose(out["scores"], np.asarray(want["scores"]), atol=1e-5)


@pytest.mark.slow
def test_detector_generalises_to_held_out_rectangles():
    """fit() with EMA, warm-up and linear decay on 256 images at 96 px, then 64 held-out
    images through class-aware NMS (TensorFlow's): the top-n boxes of an image with n objects
    find most of them (IoU > 0.5, right class; a score-free measure, as scores are still low
    after a short run), and a 0.05 score threshold finds nearly all. About 7 min on 2 cores."""
    import tensorflow as tf

    from visionsuite_tasks.detection.training import ModelEMA, WarmupLinearDecay, warmup_steps

    size, epochs, batch = 96, 30, 16
    images, boxes, classes = rectangles(320, size, size, seed=7)
    train, held = slice(0, 256), slice(256, 320)
    keras.utils.set_random_seed(0)
    bb = build_backbone("simple_cnn", (size, size, 3), widths=(16, 32, 64, 96, 128), depth=2)
    model = build_detector(bb, 3, size="n", width=0.125)
    steps = 256 // batch
    lr = WarmupLinearDecay(3e-3, steps * epochs, warmup_steps(steps, 1.0, minimum=16))
    model.compile(keras.optimizers.AdamW(lr, weight_decay=5e-4), jit_compile=False)
    model.fit(images[train], {"boxes": boxes[train], "classes": classes[train]},
              batch_size=batch, epochs=epochs, verbose=0, callbacks=[ModelEMA(tau=100)])
    out = inference_model(model).predict(images[held], verbose=0)
    nms = tf.image.combined_non_max_suppression(
        out["boxes"][:, :, None, :], out["scores"], max_output_size_per_class=20,
        max_total_size=20, iou_threshold=0.6, score_threshold=0.05, clip_boxes=False)
    top_n = found = total = 0
    for i in range(64):
        n = int(nms.valid_detections[i])
        det_boxes = np.asarray(nms.nmsed_boxes[i][:n])
        det_classes = np.asarray(nms.nmsed_classes[i][:n]).astype(int)
        real = classes[held][i] >= 0
        used = np.zeros(n, bool)
        for box, cls in zip(boxes[held][i][real], classes[held][i][real].astype(int)):
            total += 1
            if not n:
                continue
            hit = (np.asarray(box_iou(box[None], det_boxes)) > 0.5) & (det_classes == cls)
            found += bool(hit.any())
            free = np.flatnonzero(hit & ~used & (np.arange(n) < int(real.sum())))
            if len(free):
                used[free[0]] = True
                top_n += 1
    print(f"held-out: top-n {top_n}/{total}, found at 0.05 {found}/{total}")
    assert found / total >= 0.9, (found, total)
    assert top_n / total >= 0.8, (top_n, total)
