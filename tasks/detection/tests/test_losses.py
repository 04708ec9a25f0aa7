"""Detection loss: box overlaps, the task-aligned assigner (against a loop reference), the
loss terms on perfect / perturbed / padded / empty targets, gradients, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite_tasks.detection.losses import (DetectionLoss, box_ciou, box_iou, split_targets,
                                                task_aligned_assign)
from visionsuite_tasks.detection.models import decode_distances, make_anchors

SIZE = (64, 96)
REG_MAX = 16


def _np(x):
    return np.asarray(x)


# === Box overlaps ===
def test_iou_and_ciou_known_values():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    b = tf.constant([[1.0, 1.0, 3.0, 3.0]])
    assert _np(box_iou(a, b))[0] == pytest.approx(1 / 7, abs=1e-5)
    # Same aspect ratio: CIoU = IoU - centre distance^2 / enclosing diagonal^2 = 1/7 - 2/18.
    assert _np(box_ciou(a, b))[0] == pytest.approx(1 / 7 - 2 / 18, abs=1e-5)
    assert _np(box_ciou(a, a))[0] == pytest.approx(1.0, abs=1e-5)
    far = tf.constant([[10.0, 10.0, 11.0, 14.0]])
    assert _np(box_iou(a, far))[0] == 0.0
    assert _np(box_ciou(a, far))[0] < 0.0
    # Aspect term: a 2x1 box inside a 2x2 box has IoU 0.5 and a positive aspect penalty.
    tall = tf.constant([[0.0, 0.0, 2.0, 1.0]])
    v = 4 / math.pi ** 2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    rho2, c2 = 0.25, 8.0
    expected = 0.5 - (rho2 / c2 + v * v / (v - 0.5 + 1))
    assert _np(box_ciou(a, tall))[0] == pytest.approx(expected, abs=1e-4)


def test_overlaps_broadcast():
    gt = tf.random.uniform((2, 3, 1, 4))
    pred = tf.random.uniform((2, 1, 5, 4))
    assert box_ciou(gt, pred).shape == (2, 3, 5)


# === Assigner ===
def _ciou_np(a, b, eps=1e-7):
    w1, h1 = a[2] - a[0], a[3] - a[1] + eps
    w2, h2 = b[2] - b[0], b[3] - b[1] + eps
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    rho2 = ((b[0] + b[2] - a[0] - a[2]) ** 2 + (b[1] + b[3] - a[1] - a[3]) ** 2) / 4
    v = 4 / math.pi ** 2 * (math.atan(w2 / h2) - math.atan(w1 / h1)) ** 2
    alpha = v / (v - iou + 1 + eps)
    return iou - (rho2 / (cw * cw + ch * ch + eps) + v * alpha)


def _assign_reference(scores, pred, points, gt, cls, topk, alpha, beta):
    """Loops over images, targets and anchors: the algorithm as written in the docstring."""
    num_anchors = len(points)
    fg = np.zeros(num_anchors, bool)
    index = np.zeros(num_anchors, int)
    real = [g for g in range(len(gt)) if cls[g] >= 0]
    metric = np.zeros((len(gt), num_anchors))
    overlap = np.zeros((len(gt), num_anchors))
    for g in real:
        x1, y1, x2, y2 = gt[g]
        for a, (px, py) in enumerate(points):
            if min(px - x1, py - y1, x2 - px, y2 - py) > 1e-9:
                overlap[g, a] = max(_ciou_np(gt[g], pred[a]), 0.0)
                metric[g, a] = scores[a, cls[g]] ** alpha * overlap[g, a] ** beta
    positive = np.zeros_like(metric, bool)
    for g in real:
        order = np.argsort(-metric[g])[:topk]
        positive[g, order] = metric[g, order] > 0
    for a in range(num_anchors):
        owners = np.flatnonzero(positive[:, a])
        if len(owners) > 1:
            best = int(np.argmax(overlap[:, a]))
            positive[:, a] = False
            positive[best, a] = True
        if positive[:, a].any():
            fg[a], index[a] = True, int(np.flatnonzero(positive[:, a])[0])
    target = np.zeros((num_anchors, scores.shape[1]))
    for g in real:
        pos = positive[g]
        if not pos.any():
            continue
        m = metric[g] * pos
        norm = m / m.max() * (overlap[g] * pos).max()
        target[pos, cls[g]] = norm[pos]
    return fg, index, target


def test_assigner_matches_a_loop_reference_on_random_scenes():
    rng = np.random.default_rng(3)
    points, _ = make_anchors(SIZE, (8, 16, 32))
    num_anchors, classes, batch, m = len(points), 4, 3, 6
    gt = np.full((batch, m, 4), -1.0, np.float32)
    cls = np.full((batch, m), -1, np.int32)
    for b, count in enumerate((4, 0, 6)):  # the second image has no objects
        for g in range(count):
            w, h = rng.uniform(10, 50), rng.uniform(10, 40)
            x, y = rng.uniform(0, SIZE[1] - w), rng.uniform(0, SIZE[0] - h)
            gt[b, g] = [x, y, x + w, y + h]
            cls[b, g] = rng.integers(0, classes)
    # Predictions near the targets so that overlaps are positive and distinct.
    centre = rng.uniform(0, 96, (batch, num_anchors, 2))
    size = rng.uniform(8, 48, (batch, num_anchors, 2))
    pred = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    scores = rng.uniform(0.01, 0.99, (batch, num_anchors, classes)).astype(np.float32)
    out = task_aligned_assign(scores, pred, points, gt, cls, num_classes=classes, topk=5)
    for b in range(batch):
        fg, index, target = _assign_reference(scores[b].astype(np.float64),
                                              pred[b].astype(np.float64), points, gt[b],
                                              cls[b], 5, 0.5, 6.0)
        np.testing.assert_array_equal(_np(out.foreground[b]), fg)
        np.testing.assert_array_equal(_np(out.target_index[b])[fg], index[fg])
        np.testing.assert_allclose(_np(out.scores[b]), target, atol=2e-4)
        np.testing.assert_allclose(_np(out.boxes[b])[fg], gt[b][index[fg]])
    assert _np(out.foreground[0]).sum() > 4  # the scenes do produce positives
    assert not _np(out.foreground[1]).any() and not _np(out.scores[1]).any()


def test_assigner_picks_the_best_aligned_anchors_inside_the_box():
    points, _ = make_anchors((64, 64), (8, 16, 32))
    num_anchors = len(points)
    box = np.array([8.0, 8.0, 40.0, 40.0], np.float32)
    pred = np.tile(box + [4, 4, 4, 4], (num_anchors, 1)).astype(np.float32)  # imperfect
    scores = np.full((num_anchors, 2), 0.1, np.float32)
    inside = np.flatnonzero((points[:, 0] > 8) & (points[:, 0] < 40)
                            & (points[:, 1] > 8) & (points[:, 1] < 40))
    good = inside[:5]
    for rank, a in enumerate(good):  # perfect boxes, decreasing scores
        pred[a] = box
        scores[a, 1] = 0.9 - 0.1 * rank
    outside = int(np.flatnonzero(points[:, 0] > 50)[0])
    pred[outside], scores[outside, 1] = box, 0.99  # perfect but its point is outside
    gt = np.array([[box, [-1, -1, -1, -1]]], np.float32)
    cls = np.array([[1, -1]], np.int32)
    out = task_aligned_assign(scores[None], pred[None], points, gt, cls, num_classes=2, topk=3)
    fg = np.flatnonzero(_np(out.foreground[0]))
    np.testing.assert_array_equal(fg, np.sort(good[:3]))
    target = _np(out.scores[0])
    assert target[good[0], 1] == pytest.approx(1.0, abs=1e-4)  # best anchor aims at its IoU, 1
    assert target[good[1], 1] == pytest.approx(math.sqrt(0.8 / 0.9), abs=1e-4)
    assert target[:, 0].max() == 0.0 and target[outside].max() == 0.0


def test_an_anchor_claimed_by_two_targets_goes_to_the_one_it_overlaps_most():
    points = np.array([[20.0, 20.0]], np.float32)
    pred = np.array([[[10.0, 10.0, 30.0, 30.0]]], np.float32)
    gt = np.array([[[0.0, 0.0, 40.0, 40.0], [9.0, 9.0, 31.0, 31.0]]], np.float32)
    cls = np.array([[0, 1]], np.int32)
    out = task_aligned_assign(np.full((1, 1, 2), 0.5, np.float32), pred, points, gt, cls,
                              num_classes=2, topk=10)
    assert bool(out.foreground[0, 0])
    assert int(out.target_index[0, 0]) == 1
    assert _np(out.scores)[0, 0, 0] == 0.0 and _np(out.scores)[0, 0, 1] > 0.5


# === Loss ===
def _perfect_raw(boxes_by_anchor, points, strides, num_classes, labels):
    """Raw outputs whose decoded boxes equal ``boxes_by_anchor`` (two-bin distributions)."""
    ltrb = np.concatenate([points - boxes_by_anchor[:, :2], boxes_by_anchor[:, 2:] - points], -1)
    ltrb = np.clip(ltrb / strides, 0, REG_MAX - 1.01)
    left = np.floor(ltrb).astype(int)
    w_left = left + 1 - ltrb
    prob = np.full((len(points), 4, REG_MAX), 1e-12)
    rows = np.arange(len(points))[:, None]
    sides = np.arange(4)[None, :]
    prob[rows, sides, left] = w_left
    prob[rows, sides, left + 1] += 1 - w_left
    logits = np.log(prob / prob.sum(-1, keepdims=True)).reshape(len(points), 4 * REG_MAX)
    cls_logits = np.full((len(points), num_classes), -8.0)
    cls_logits[np.arange(len(points)), labels] = 8.0
    return np.concatenate([logits, cls_logits], -1).astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    points, strides = make_anchors(SIZE, (8, 16, 32))
    gt = np.array([[[10, 8, 50, 40], [60, 30, 90, 60], [-1, -1, -1, -1]],
                   [[20, 20, 44, 52], [-1, -1, -1, -1], [-1, -1, -1, -1]]], np.float32)
    cls = np.array([[0, 2, -1], [1, -1, -1]], np.float32)
    # Every anchor predicts the box of the target it lies in (first one), class of it.
    raws = []
    for b in range(2):
        boxes = np.tile([30.0, 30.0, 34.0, 34.0], (len(points), 1))
        labels = np.zeros(len(points), int)
        for g in range(3):
            if cls[b, g] < 0:
                continue
            x1, y1, x2, y2 = gt[b, g]
            inside = ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1)
                      & (points[:, 1] < y2))
            boxes[inside] = gt[b, g]
            labels[inside] = int(cls[b, g])
        raws.append(_perfect_raw(boxes, points, strides, 3, labels))
    raw = tf.constant(np.stack(raws))
    return dict(points=points, strides=strides, gt=gt, cls=cls, raw=raw)


def _pred(raw, points, strides):
    raw = tf.convert_to_tensor(raw)
    boxes = decode_distances(raw[..., :4 * REG_MAX], points, strides, REG_MAX)
    return {"boxes": boxes, "raw": raw}


def test_perfect_predictions_score_lower_than_perturbed_ones(scene):
    loss = DetectionLoss(3)
    y = {"boxes": scene["gt"], "classes": scene["cls"]}
    perfect = loss.terms(y, _pred(scene["raw"], scene["points"], scene["strides"]), SIZE)
    assert float(perfect["positives"]) > 3
    assert float(perfect["box"]) < 1e-3
    noisy = scene["raw"] + tf.random.stateless_normal(scene["raw"].shape, (1, 2), stddev=3.0)
    worse = loss.terms(y, _pred(noisy, scene["points"], scene["strides"]), SIZE)
    for key in ("box", "dfl", "loss"):
        assert float(worse[key]) > float(perfect[key]) + 0.05, key
    total = 7.5 * float(worse["box"]) + 0.5 * float(worse["cls"]) + 1.5 * float(worse["dfl"])
    assert float(worse["loss"]) == pytest.approx(total, rel=1e-5)


def test_padding_position_and_amount_do_not_change_the_loss(scene):
    loss = DetectionLoss(3)
    pred = _pred(scene["raw"], scene["points"], scene["strides"])
    base = loss.terms({"boxes": scene["gt"], "classes": scene["cls"]}, pred, SIZE)
    # Padding first, and ten more padding rows.
    gt = np.concatenate([np.full((2, 10, 4), -1, np.float32), scene["gt"][:, ::-1]], 1)
    cls = np.concatenate([np.full((2, 10), -1, np.float32), scene["cls"][:, ::-1]], 1)
    moved = loss.terms((gt, cls), pred, SIZE)
    packed = loss.terms(np.concatenate([gt, cls[..., None]], -1), pred, SIZE)
    for key in ("loss", "box", "cls", "dfl", "positives"):
        assert float(moved[key]) == pytest.approx(float(base[key]), rel=1e-5), key
        assert float(packed[key]) == pytest.approx(float(base[key]), rel=1e-5), key


def test_images_without_objects_train_the_classifier_only(scene):
    loss = DetectionLoss(3)
    raw = tf.Variable(scene["raw"])
    y = {"boxes": np.full((2, 4, 4), -1, np.float32), "classes": np.full((2, 4), -1, np.int32)}
    with tf.GradientTape() as tape:
        terms = loss.terms(y, _pred(raw, scene["points"], scene["strides"]), SIZE)
    grad = _np(tape.gradient(terms["loss"], raw))
    assert float(terms["box"]) == 0.0 and float(terms["dfl"]) == 0.0
    assert float(terms["cls"]) > 0.0 and float(terms["positives"]) == 0.0
    assert np.isfinite(grad).all()
    assert np.abs(grad[..., :4 * REG_MAX]).max() == 0.0  # no box gradient
    assert np.abs(grad[..., 4 * REG_MAX:]).max() > 0.0


def test_gradients_are_finite_and_reach_both_branches(scene):
    loss = DetectionLoss(3)
    noisy = scene["raw"] + tf.random.stateless_normal(scene["raw"].shape, (5, 6), stddev=2.0)
    raw = tf.Variable(noisy)
    with tf.GradientTape() as tape:
        value = loss({"boxes": scene["gt"], "classes": scene["cls"]},
                     _pred(raw, scene["points"], scene["strides"]), SIZE)
    grad = _np(tape.gradient(value, raw))
    assert np.isfinite(grad).all()
    assert np.abs(grad[..., :4 * REG_MAX]).max() > 0 and np.abs(grad[..., 4 * REG_MAX:]).max() > 0


def test_bad_targets_and_outputs_fail_in_one_line(scene):
    loss = DetectionLoss(3)
    pred = _pred(scene["raw"], scene["points"], scene["strides"])
    with pytest.raises(DataError, match="Received: keys=\\['boxes'\\]"):
        loss.terms({"boxes": scene["gt"]}, pred, SIZE)
    with pytest.raises(DataError, match="packed"):
        split_targets(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ModelError, match="'raw'"):
        loss.terms({"boxes": scene["gt"], "classes": scene["cls"]}, {"boxes": pred["boxes"]},
                   SIZE)
    with pytest.raises(ModelError, match="anchors"):
        loss.terms({"boxes": scene["gt"], "classes": scene["cls"]}, pred, (64, 64))
    with pytest.raises(ModelError, match="num_classes=5"):
        DetectionLoss(5).terms({"boxes": scene["gt"], "classes": scene["cls"]}, pred, SIZE)
    with pytest.raises(UsageError, match="Received: num_classes=0"):
        DetectionLoss(0)
    with pytest.raises(UsageError, match="Received: box_weight=-1"):
        DetectionLoss(3, box_weight=-1)


def test_loss_config_round_trips():
    loss = DetectionLoss(7, topk=13, cls_weight=1.0)
    again = DetectionLoss.from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
    assert "topk=13" in repr(again)
