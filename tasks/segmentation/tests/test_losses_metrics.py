"""Losses (ignore index, class weights) and confusion-matrix metrics against hand computation."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite.files import write_json_atomic
from visionsuite_tasks.segmentation import losses, metrics

# One batch of 1 x 2 x 2 pixels, 3 classes.
Y_TRUE = np.array([[[0, 1], [2, 255]]], np.int32)
PROBS = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]],
                   [[0.2, 0.2, 0.6], [0.9, 0.05, 0.05]]]], np.float32)
P_TRUE = np.array([0.7, 0.6, 0.6])  # probability of the true class at the valid pixels


def _value(loss, y=Y_TRUE, p=PROBS):
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def test_cross_entropy_ignores_pixels_and_weights_classes():
    ce = _value(losses.SegmentationCrossEntropy(ignore_index=255))
    assert ce == pytest.approx(np.mean(-np.log(P_TRUE)), rel=1e-5)
    # Changing the ignored pixel's prediction changes nothing.
    other = PROBS.copy()
    other[0, 1, 1] = [0.05, 0.05, 0.9]
    assert _value(losses.SegmentationCrossEntropy(255), p=other) == pytest.approx(ce, rel=1e-6)
    w = np.array([1.0, 2.0, 3.0])
    weighted = _value(losses.SegmentationCrossEntropy(255, class_weights=w.tolist()))
    assert weighted == pytest.approx(np.sum(w * -np.log(P_TRUE)) / w.sum(), rel=1e-5)
    # A (B, H, W, 1) target works the same.
    assert _value(losses.SegmentationCrossEntropy(255), y=Y_TRUE[..., None]) == pytest.approx(ce)


def test_focal_reduces_to_cross_entropy_at_gamma_zero():
    assert _value(losses.FocalLoss(gamma=0.0)) == pytest.approx(
        _value(losses.SegmentationCrossEntropy()), rel=1e-5)
    expected = np.mean(-(1 - P_TRUE) ** 2 * np.log(P_TRUE))
    assert _value(losses.FocalLoss(gamma=2.0)) == pytest.approx(expected, rel=1e-5)


def test_dice_perfect_and_hand_computed():
    onehot = np.eye(3, dtype=np.float32)[np.where(Y_TRUE == 255, 0, Y_TRUE)]
    assert _value(losses.DiceLoss(smooth=0.0), p=onehot) == pytest.approx(0.0, abs=1e-6)
    valid = (Y_TRUE != 255)[..., None]
    inter = (PROBS * onehot * valid).sum(axis=(0, 1, 2))
    denom = (PROBS * valid).sum(axis=(0, 1, 2)) + (onehot * valid).sum(axis=(0, 1, 2))
    expected = 1 - np.mean((2 * inter + 1) / (denom + 1))
    assert _value(losses.DiceLoss(smooth=1.0)) == pytest.approx(expected, rel=1e-5)


def test_ce_dice_is_the_sum_and_losses_serialise():
    combo = losses.CrossEntropyDiceLoss(ce_weight=1.0, dice_weight=0.5)
    expected = _value(losses.SegmentationCrossEntropy()) + 0.5 * _value(losses.DiceLoss())
    assert _value(combo) == pytest.approx(expected, rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(combo))
    assert _value(restored) == pytest.approx(_value(combo), rel=1e-6)
    with pytest.raises(UsageError, match="Received: loss='dicee'"):
        losses.make_loss("dicee")


def test_confusion_matrix_and_scores_by_hand(tmp_path):
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = metrics.confusion_matrix(truth, pred, 3, 255)
    # rows true, columns predicted; the ignored pixel is left out
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    report = metrics.scores(cm, ["a", "b", "c"])
    iou = [2 / (2 + 1 + 1), 2 / (2 + 1), 1 / (1 + 1)]
    dice = [2 * 2 / (4 + 1 + 1), 4 / (4 + 1), 2 / (2 + 1)]
    assert report["miou"] == pytest.approx(np.mean(iou))
    assert report["pixel_accuracy"] == pytest.approx(5 / 7)
    assert report["mean_dice"] == pytest.approx(np.mean(dice))
    assert report["per_class"]["b"]["iou"] == pytest.approx(iou[1])
    # Accumulating two halves gives the same as one pass (not a mean of per-batch scores).
    halves = (metrics.confusion_matrix(truth[:1], pred[:1], 3)
              + metrics.confusion_matrix(truth[1:], pred[1:], 3))
    assert np.array_equal(halves, cm)
    # A class absent from truth and prediction is left out of the mean.
    report4 = metrics.scores(np.pad(cm, ((0, 1), (0, 1))), ["a", "b", "c", "d"])
    assert report4["miou"] == pytest.approx(np.mean(iou))
    assert report4["per_class"]["d"]["iou"] is None
    metrics.plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png")
    write_json_atomic(tmp_path / "m.json", report, sort_keys=True)
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert json.loads((tmp_path / "m.json").read_text())["confusion_matrix"] == cm.tolist()


def test_fit_metrics_accumulate_and_skip_ignored_pixels():
    truth = np.array([[[0, 0, 1, 1], [2, 2, 255, 0]]], np.int32)
    pred = np.array([[[0, 1, 1, 1], [2, 0, 2, 0]]])
    probs = np.eye(3, dtype=np.float32)[pred]
    miou, acc = metrics.fit_metrics(3, 255)
    for m in (miou, acc):  # two batches, one pixel row each
        m.update_state(truth[:, :1], probs[:, :1])
        m.update_state(truth[:, 1:], probs[:, 1:])
    expected = metrics.scores(metrics.confusion_matrix(truth, pred, 3), "abc")
    assert float(miou.result()) == pytest.approx(expected["miou"], rel=1e-5)
    assert float(acc.result()) == pytest.approx(5 / 7, rel=1e-6)
