"""Segmentation's cheap stream path: the stream variant of a model (uint8 labels and scores at
the head's native resolution), the post-processing fast paths against the code on ``main``
(masks equal within argmax ties, the same JSON lines on the default person model), smoothing
of low-resolution scores, and the uint8 overlay."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from visionsuite import samples
from visionsuite.assets import AssetError
from visionsuite.specs import InputSpec
from visionsuite_tasks.segmentation.task import (SegmentationConfig, SegmentationPrediction,
                                                 SegmentationTask)

CLASSES = ("background", "a", "b")


def main_postprocess(probs, h, w, n):
    """The mask of ``SegmentationTask.postprocess`` as it was on ``main`` (reference)."""
    probs = np.asarray(probs, np.float32)
    if probs.shape[-1] == 1 and n == 2:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    if (h, w) != probs.shape[:2]:
        probs = cv2.resize(probs, (w, h), interpolation=cv2.INTER_LINEAR)
        if probs.ndim == 2:
            probs = probs[..., None]
    return probs.argmax(axis=-1).astype(np.uint8), probs


def _not_tied(resized, tol=1e-5):
    top2 = np.sort(resized, axis=-1)[..., -2:]
    return (top2[..., 1] - top2[..., 0]) > tol


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_masks_equal_main_within_argmax_ties(channels):
    rng = np.random.default_rng(channels)
    n = 3 if channels == 3 else 2
    classes = CLASSES if n == 3 else ("background", "person")
    task = SegmentationTask(SegmentationConfig(image_size=32))
    for h, w in ((24, 24), (30, 40), (61, 47)):
        logits = cv2.GaussianBlur(rng.normal(0, 3, (24, 24, max(channels, 2))).astype(np.float32),
                                  (5, 5), 0)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        probs = probs[..., 1:2] if channels == 1 else probs[..., :channels]
        pred = task.postprocess({"probabilities": probs}, {"height": h, "width": w}, classes)
        ref, resized = main_postprocess(probs, h, w, n)
        clear = _not_tied(resized)
        assert pred.mask.shape == (h, w) and pred.mask.dtype == np.uint8
        assert clear.mean() > 0.95  # the comparison covers nearly every pixel
        np.testing.assert_array_equal(pred.mask[clear], ref[clear])
        assert len(np.unique(ref)) == n  # every class present: a real comparison


def test_labels_are_resized_once_and_scores_smoothed_at_low_resolution():
    task = SegmentationTask(SegmentationConfig(image_size=32))
    labels = np.zeros((4, 4), np.uint8)
    labels[:, 2:] = 2
    pred = task.postprocess({"labels": labels, "scores": np.zeros((4, 4, 3), np.float32)},
                            {"height": 8, "width": 12}, CLASSES)
    expected = cv2.resize(labels, (12, 8), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(pred.mask, expected)  # labels used, scores ignored
    assert pred.fractions == pytest.approx([0.5, 0.0, 0.5])

    smooth = SegmentationTask(SegmentationConfig(image_size=32, smoothing=0.8))
    state = smooth.new_state("cam0", InputSpec.image(32), CLASSES)
    meta = {"height": 8, "width": 8}
    steady = np.full((4, 4, 3), 0.1, np.float32)
    steady[..., 1] = 0.8
    flicker = np.full((4, 4, 3), 0.1, np.float32)
    flicker[..., 2], flicker[..., 1] = 0.55, 0.35
    wrong = np.full((4, 4), 2, np.uint8)  # labels of the flicker frame
    assert (state.merge({"labels": np.ones((4, 4), np.uint8), "scores": steady}, meta).mask
            == 1).all()
    out = state.merge({"labels": wrong, "scores": flicker}, meta)
    assert out.mask.shape == (8, 8) and (out.mask == 1).all()  # smoothed scores, not labels
    plain = task.new_state("cam0", InputSpec.image(32), CLASSES)
    assert (plain.merge({"labels": wrong, "scores": flicker}, meta).mask == 2).all()


@pytest.mark.parametrize("small,size", [((64, 64), (480, 640)), ((64, 64), (144, 176)),
                                        ((33, 47), (101, 59)), ((32, 32), (32, 32)),
                                        ((64, 48), (20, 30))])
def test_class_fractions_counted_on_the_small_label_map_equal_the_resized_mask(small, size):
    """The stream path counts class pixels on the head's label map, weighting each pixel by
    the output pixels it becomes; the counts must equal a bincount of the resized mask."""
    rng = np.random.default_rng(sum(small) + sum(size))
    labels = rng.integers(0, len(CLASSES), small).astype(np.uint8)
    labels[: small[0] // 3] = 0  # uneven shares
    task = SegmentationTask(SegmentationConfig(image_size=32))
    h, w = size
    pred = task.postprocess({"labels": labels}, {"height": h, "width": w}, CLASSES)
    mask = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(pred.mask, mask)
    counts = np.bincount(mask.reshape(-1), minlength=len(CLASSES))
    assert pred.fractions == (counts / mask.size).tolist()
    scores = np.eye(len(CLASSES), dtype=np.float32)[labels]  # low-res scores, same argmax
    two = task.postprocess({"scores": scores}, {"height": h, "width": w}, CLASSES)
    assert two.fractions == pred.fractions


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    import keras

    from visionsuite.backbones.registry import build_backbone
    from visionsuite.models import ModelMetadata, save_keras_model

    keras.utils.set_random_seed(1)
    task = SegmentationTask(SegmentationConfig(image_size=64, head="lraspp", head_channels=8,
                                               output_stride=16))
    model = task.build_model(build_backbone("mobilenet_v3_small", (64, 64, 3)), CLASSES)
    # random but confident class scores: a large final layer
    w, b = model.get_layer("lraspp_low_classifier").get_weights()
    model.get_layer("lraspp_low_classifier").set_weights([w * 30, b])
    meta = ModelMetadata(task="segmentation", classes=CLASSES, input_size=64,
                         backbone="mobilenet_v3_small",
                         task_config={"image_size": 64, "head": "lraspp", "head_channels": 8},
                         outputs=tuple(task.output_specs()))
    return save_keras_model(model, tmp_path_factory.mktemp("seg") / "tiny.keras", meta)


def test_stream_variant_gives_native_labels_and_tflite_runs_it(tiny_model_path):
    from visionsuite.models import load_keras_model
    from visionsuite.runtime import load_runtime
    from visionsuite_tasks.segmentation.models import stream_model

    model = load_keras_model(tiny_model_path)
    fast = stream_model(model)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    out = {k: np.asarray(v) for k, v in fast(x).items()}
    assert out["labels"].dtype == np.uint8 and out["labels"].shape == (1, 8, 8)
    assert out["scores"].shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(out["labels"], out["scores"].argmax(-1))
    # the native labels, resized once, agree with main's mask on most pixels (edges move)
    full = np.asarray(model(x))[0]
    agree = (cv2.resize(out["labels"][0], (64, 64), interpolation=cv2.INTER_NEAREST)
             == full.argmax(-1)).mean()
    assert agree > 0.7
    # the runtime converts the variant for a stream whose task asks for it, and only then
    assert SegmentationTask(SegmentationConfig(image_size=64)).stream_model(model) is None
    task = SegmentationTask(SegmentationConfig(image_size=64, native_labels=True))
    net = load_runtime(tiny_model_path, runtime="tflite", stream=task)
    assert net.output_names == ("labels", "scores") and ".stream." in net.source
    got = net(x)
    assert got["labels"].dtype == np.uint8
    clear = _not_tied(out["scores"][0], 1e-4)
    np.testing.assert_array_equal(got["labels"][0][clear], out["labels"][0][clear])
    keras_net = load_runtime(tiny_model_path, runtime="keras", stream=True)  # saved config: off
    assert keras_net.output_names == ("probabilities",)


def test_overlay_matches_the_float_blend_and_leaves_background():
    from visionsuite_tasks.segmentation.render import class_colors, overlay

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 64, 3), np.uint8)
    mask = rng.integers(0, 3, (48, 64)).astype(np.uint8)
    colors = class_colors(CLASSES)
    for _ in range(2):  # the second call reuses the scratch buffers
        out = overlay(frame, mask, colors, alpha=0.6, skip=0)
        lut = colors[:, ::-1].astype(np.float32)
        ref = np.clip(frame * 0.4 + lut[mask] * 0.6 + 0.5, 0, 255).astype(np.uint8)
        keep = mask != 0
        assert np.abs(out[keep].astype(int) - ref[keep].astype(int)).max() <= 1
        np.testing.assert_array_equal(out[~keep], frame[~keep])
    assert out is not frame and not np.shares_memory(out, frame)
    small = rng.integers(0, 3, (12, 16)).astype(np.uint8)  # a head's label map
    resized = cv2.resize(small, (64, 48), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(overlay(frame, resized, colors, alpha=0.6, skip=0,
                                          labels=small),
                                  overlay(frame, resized, colors, alpha=0.6, skip=0))


@pytest.fixture(scope="module")
def clip():
    try:
        return samples.sample_video("carphone_pristine")
    except AssetError as exc:
        pytest.skip(str(exc))


def test_default_person_model_json_lines_equal_main(clip, tmp_path):
    """The engine's JSON lines on the default model equal the records of main's
    post-processing (reproduced above) on the bare model's outputs for the same frames."""
    import visionsuite
    from visionsuite.runtime import load_runtime
    from visionsuite.streams.state import to_model_input
    from visionsuite_tasks.segmentation.pretrained import selfie_segmentation_model

    try:
        model_path = selfie_segmentation_model()
    except AssetError as exc:
        pytest.skip(str(exc))
    results = tmp_path / "r.jsonl"
    stream = visionsuite.run("segmentation", clip, model=model_path, results=results,
                             max_frames=12, save=tmp_path / "out.mp4")
    for _ in stream:
        pass
    got = [json.loads(line)["result"] for line in results.read_text().splitlines()]
    assert len(got) >= 12  # the sinks may run a frame ahead of max_frames
    net = load_runtime(model_path)
    task = stream.task
    cap = cv2.VideoCapture(str(clip))
    for record in got:
        ok, frame = cap.read()
        assert ok
        x, meta = to_model_input(task, frame, net.input_spec)
        probs = net(x[None])["probabilities"][0]
        mask, _ = main_postprocess(probs, meta["height"], meta["width"], 2)
        counts = np.bincount(mask.reshape(-1), minlength=2)[:2]
        pred = SegmentationPrediction(classes=list(net.metadata.classes), mask=mask,
                                      fractions=(counts / mask.size).tolist(), meta=meta)
        assert record == json.loads(json.dumps(task.to_record(pred)))
    cap.release()
    assert any(r["fractions"]["person"] > 0.05 for r in got)  # a person is found
