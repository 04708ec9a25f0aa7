"""Training loss of the YOLOv8-style detector: task-aligned assignment, then BCE + CIoU + DFL.

Targets are padded boxes: ``boxes`` ``(B, M, 4)`` ``x1, y1, x2, y2`` in input pixels and
``classes`` ``(B, M)``, both padded with -1 (a target is real where ``classes >= 0``; images
without objects are valid negatives). Predictions are the detector's output dict (``"boxes"``
decoded ``xyxy`` pixels and ``"raw"`` distribution + class logits, see
:mod:`visionsuite_tasks.detection.models`). Everything is vectorised over the batch in
TensorFlow; the padded target axis is first compacted to the largest real count in the batch.

Assignment (task-aligned, as in TOOD / YOLOv8), per image and target ``g``:

1. candidate anchors: anchor points strictly inside the target box;
2. alignment ``t = s^alpha * IoU^beta`` with ``s`` the predicted score of the target's class
   and ``IoU`` the CIoU (clamped at 0) of the predicted box with the target box;
3. the ``topk`` candidates of highest ``t`` are positives (ties at the k-th value are kept,
   candidates with ``t = 0`` never are); an anchor positive for several targets keeps the one
   it overlaps most;
4. soft class targets: one-hot of the class times ``t / max_g(t) * max_g(IoU)``, so the best
   aligned anchor of each target aims at that target's best IoU.

Loss, normalised by the sum of the soft targets (at least 1) over the batch:

* ``cls``: binary cross-entropy of every class logit against the soft targets;
* ``box``: ``1 - CIoU`` of positive anchors, weighted by their soft target;
* ``dfl``: distribution focal loss -- cross-entropy of each side's distribution against the
  two bins around the target distance (stride units, clipped to ``reg_max - 1.01``), linearly
  weighted, averaged over the 4 sides, weighted like ``box``;
* ``loss = box_weight * box + cls_weight * cls + dfl_weight * dfl`` (7.5, 0.5, 1.5).

Unlike Ultralytics, the total is not multiplied by the batch size: it is a per-batch value,
so the learning rate does not depend on the batch size (the usual Keras convention).

Public API::

    DetectionLoss(num_classes, *, reg_max=16, strides=(8, 16, 32), box_weight=7.5,
                  cls_weight=0.5, dfl_weight=1.5, topk=10, alpha=0.5, beta=6.0)
        .terms(y_true, y_pred, image_size) -> {"loss", "box", "cls", "dfl", "positives"}
        (y_true, y_pred, image_size) -> loss
    task_aligned_assign(scores, pred_boxes, points, gt_boxes, gt_classes, *, num_classes,
                        topk=10, alpha=0.5, beta=6.0) -> Assignment
    box_iou(a, b), box_ciou(a, b)      # broadcasting, xyxy
    split_targets(y_true) -> (boxes float32 (B, M, 4), classes int32 (B, M))
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite_tasks.detection.models import PACKAGE, STRIDES, make_anchors

EPS = 1e-9


def _tf():
    import tensorflow as tf

    return tf


# === Box overlaps (broadcasting; xyxy) ===
def _iou_parts(a, b, eps):
    tf = _tf()
    ax1, ay1, ax2, ay2 = tf.unstack(a, axis=-1)
    bx1, by1, bx2, by2 = tf.unstack(b, axis=-1)
    w1, h1 = ax2 - ax1, ay2 - ay1 + eps
    w2, h2 = bx2 - bx1, by2 - by1 + eps
    iw = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    ih = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    return (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, w1, h1, w2, h2), iou


def box_iou(a, b, eps: float = 1e-7):
    """IoU of ``xyxy`` boxes ``a`` and ``b`` (shapes broadcast; last axis 4)."""
    return _iou_parts(a, b, eps)[1]


def box_ciou(a, b, eps: float = 1e-7):
    """Complete IoU (Zheng et al., 2020) of ``xyxy`` boxes: IoU minus the normalised centre
    distance and an aspect-ratio term whose trade-off factor is held constant for the
    gradient. Shapes broadcast; last axis 4."""
    tf = _tf()
    (ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, w1, h1, w2, h2), iou = _iou_parts(a, b, eps)
    cw = tf.maximum(ax2, bx2) - tf.minimum(ax1, bx1)
    ch = tf.maximum(ay2, by2) - tf.minimum(ay1, by1)
    c2 = cw * cw + ch * ch + eps
    rho2 = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4.0
    v = (4.0 / math.pi ** 2) * (tf.atan(w2 / h2) - tf.atan(w1 / h1)) ** 2
    alpha = tf.stop_gradient(v / (v - iou + (1.0 + eps)))
    return iou - (rho2 / c2 + v * alpha)


# === Targets ===
def split_targets(y_true):
    """``(boxes (B, M, 4) float32, classes (B, M) int32)`` from ``{"boxes", "classes"}``, a
    ``(boxes, classes)`` pair or a packed ``(B, M, 5)`` tensor ``x1, y1, x2, y2, class``."""
    tf = _tf()
    if isinstance(y_true, dict):
        missing = [k for k in ("boxes", "classes") if k not in y_true]
        if missing:
            raise DataError(f"detection targets need the keys 'boxes' and 'classes'. "
                            f"Received: keys={sorted(y_true)}")
        boxes, classes = y_true["boxes"], y_true["classes"]
    elif isinstance(y_true, (tuple, list)) and len(y_true) == 2:
        boxes, classes = y_true
    else:
        packed = tf.convert_to_tensor(y_true)
        if packed.shape.rank != 3 or packed.shape[-1] != 5:
            raise DataError(f"detection targets are {{'boxes': (B, M, 4), 'classes': (B, M)}}"
                            f" or a packed (B, M, 5) tensor. Received: shape={packed.shape}")
        boxes, classes = packed[..., :4], packed[..., 4]
    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(tf.round(tf.cast(classes, tf.float32)), tf.int32)
    if boxes.shape.rank != 3 or boxes.shape[-1] != 4 or classes.shape.rank != 2:
        raise DataError(f"detection targets: boxes must be (B, M, 4) and classes (B, M). "
                        f"Received: boxes {boxes.shape}, classes {classes.shape}")
    return boxes, classes


def _compact(boxes, classes):
    """Move real targets first (stable) and drop the all-padding columns beyond the largest
    per-image count (at least one column is kept)."""
    tf = _tf()
    valid = classes >= 0
    order = tf.argsort(tf.cast(~valid, tf.int32), axis=1, stable=True)
    boxes = tf.gather(boxes, order, batch_dims=1)
    classes = tf.gather(classes, order, batch_dims=1)
    keep = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)), 1)
    return boxes[:, :keep], classes[:, :keep]


# === Assignment ===
@dataclasses.dataclass
class Assignment:
    """Per-anchor targets from :func:`task_aligned_assign` (``B`` images, ``A`` anchors).

    Args:
        boxes: ``(B, A, 4)`` the assigned target box (meaningful where ``foreground``).
        scores: ``(B, A, C)`` soft class targets (0 on background anchors).
        foreground: ``(B, A)`` bool, anchors assigned to a target.
        target_index: ``(B, A)`` int32, index of the assigned target in the (compacted)
            target axis.
    """

    boxes: object
    scores: object
    foreground: object
    target_index: object


def task_aligned_assign(scores, pred_boxes, points, gt_boxes, gt_classes, *, num_classes,
                        topk: int = 10, alpha: float = 0.5, beta: float = 6.0) -> Assignment:
    """Task-aligned assignment of anchors to targets (see the module docstring).

    Args:
        scores: ``(B, A, C)`` predicted class probabilities (not logits).
        pred_boxes: ``(B, A, 4)`` predicted ``xyxy`` boxes.
        points: ``(A, 2)`` anchor points ``(x, y)`` in the units of the boxes.
        gt_boxes: ``(B, M, 4)`` target boxes, padding anywhere.
        gt_classes: ``(B, M)`` int target classes, -1 for padding.
        num_classes: ``C``.
        topk: positives per target at most.
        alpha: exponent of the score in the alignment.
        beta: exponent of the IoU in the alignment.

    No gradient flows through the assignment.
    """
    tf = _tf()
    scores = tf.stop_gradient(tf.cast(scores, tf.float32))
    pred_boxes = tf.stop_gradient(tf.cast(pred_boxes, tf.float32))
    points = tf.cast(points, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_classes = tf.cast(gt_classes, tf.int32)
    gt_mask = gt_classes >= 0
    num_anchors = tf.shape(pred_boxes)[1]
    num_targets = tf.shape(gt_boxes)[1]

    # (B, M, A): anchor point strictly inside the target box, and a real target.
    px, py = points[None, None, :, 0], points[None, None, :, 1]
    gx1, gy1, gx2, gy2 = (gt_boxes[..., i:i + 1] for i in range(4))
    candidate = ((px - gx1 > EPS) & (py - gy1 > EPS) & (gx2 - px > EPS) & (gy2 - py > EPS)
                 & gt_mask[..., None])

    # Alignment on the candidates only (a small fraction of B * M * A), scattered back.
    cls = tf.maximum(gt_classes, 0)
    where = tf.where(candidate)  # (K, 3): image, target, anchor
    image_anchor = tf.stack([where[:, 0], where[:, 2]], axis=1)
    pair_overlap = tf.maximum(box_ciou(tf.gather_nd(gt_boxes, where[:, :2]),
                                       tf.gather_nd(pred_boxes, image_anchor)), 0.0)
    pair_class = tf.cast(tf.gather_nd(cls, where[:, :2]), tf.int64)
    pair_score = tf.gather_nd(scores, tf.concat([image_anchor, pair_class[:, None]], axis=1))
    pair_metric = tf.pow(pair_score, alpha) * tf.pow(pair_overlap, beta)
    dense = tf.shape(candidate, out_type=tf.int64)
    overlaps = tf.scatter_nd(where, pair_overlap, dense)
    metric = tf.scatter_nd(where, pair_metric, dense)

    # Top-k candidates per target (a threshold at the k-th value: no (B, M, k, A) one-hot).
    k = tf.minimum(topk, num_anchors)
    kth = tf.math.top_k(metric, k=k, sorted=True).values[..., -1:]
    positive = tf.cast((metric >= kth) & (metric > 0.0) & candidate, tf.float32)

    # An anchor positive for several targets keeps the one it overlaps most.
    count = tf.reduce_sum(positive, axis=1, keepdims=True)  # (B, 1, A)
    best = tf.one_hot(tf.argmax(overlaps, axis=1), num_targets, axis=1, dtype=tf.float32)
    positive = tf.where(count > 1.0, best, positive)
    foreground = tf.reduce_sum(positive, axis=1) > 0.0  # (B, A)
    target_index = tf.cast(tf.argmax(positive, axis=1), tf.int32)  # (B, A)

    boxes = tf.gather(gt_boxes, target_index, batch_dims=1)
    labels = tf.gather(cls, target_index, batch_dims=1)
    fg = tf.cast(foreground, tf.float32)
    onehot = tf.one_hot(labels, num_classes, dtype=tf.float32) * fg[..., None]

    # Soft targets: alignment normalised per target, scaled by the target's best IoU.
    metric = metric * positive
    max_metric = tf.reduce_max(metric, axis=-1, keepdims=True)
    max_overlap = tf.reduce_max(overlaps * positive, axis=-1, keepdims=True)
    norm = tf.reduce_max(metric * max_overlap / (max_metric + EPS), axis=1)  # (B, A)
    return Assignment(boxes=boxes, scores=onehot * norm[..., None], foreground=foreground,
                      target_index=target_index)


# === Loss ===
@keras.saving.register_keras_serializable(package=PACKAGE)
class DetectionLoss:
    """The detector's loss: task-aligned assignment, BCE classification, CIoU and DFL.

    Args:
        num_classes: number of object classes.
        reg_max: bins of each side's distance distribution (as in the model).
        strides: level strides (as in the model).
        box_weight: weight of the CIoU term.
        cls_weight: weight of the classification term.
        dfl_weight: weight of the distribution focal loss.
        topk: positives per target at most (assigner).
        alpha: score exponent of the alignment (assigner).
        beta: IoU exponent of the alignment (assigner).

    Example:
        >>> loss = DetectionLoss(num_classes=3)
        >>> model.compile(keras.optimizers.AdamW(1e-3), loss=loss)   # a Detector
        >>> terms = loss.terms({"boxes": b, "classes": c}, model(x), image_size=(64, 96))
    """

    def __init__(self, num_classes, *, reg_max=16, strides=STRIDES, box_weight=7.5,
                 cls_weight=0.5, dfl_weight=1.5, topk=10, alpha=0.5, beta=6.0):
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise UsageError(f"num_classes must be a positive integer. "
                             f"Received: num_classes={num_classes!r}")
        if int(topk) < 1:
            raise UsageError(f"topk must be >= 1. Received: topk={topk!r}")
        for key, value in (("box_weight", box_weight), ("cls_weight", cls_weight),
                           ("dfl_weight", dfl_weight)):
            if float(value) < 0:
                raise UsageError(f"{key} must be >= 0. Received: {key}={value!r}")
        self.num_classes = int(num_classes)
        self.reg_max = int(reg_max)
        self.strides = tuple(int(s) for s in strides)
        self.box_weight = float(box_weight)
        self.cls_weight = float(cls_weight)
        self.dfl_weight = float(dfl_weight)
        self.topk = int(topk)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self._anchors: dict = {}

    def get_config(self) -> dict:
        return dict(num_classes=self.num_classes, reg_max=self.reg_max, strides=self.strides,
                    box_weight=self.box_weight, cls_weight=self.cls_weight,
                    dfl_weight=self.dfl_weight, topk=self.topk, alpha=self.alpha,
                    beta=self.beta)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"DetectionLoss({args})"

    def anchors(self, image_size):
        key = tuple(int(v) for v in image_size)
        if key not in self._anchors:
            self._anchors[key] = make_anchors(key, self.strides)
        return self._anchors[key]

    def __call__(self, y_true, y_pred, image_size):
        return self.terms(y_true, y_pred, image_size)["loss"]

    def terms(self, y_true, y_pred, image_size) -> dict:
        """The weighted total ``"loss"``, the unweighted ``"box"``, ``"cls"``, ``"dfl"``
        terms and the number of ``"positives"`` (assigned anchors) of a batch.

        Args:
            y_true: ``{"boxes": (B, M, 4), "classes": (B, M)}`` padded with -1 (or see
                :func:`split_targets`).
            y_pred: the detector's output dict (needs ``"boxes"`` and ``"raw"``).
            image_size: ``(height, width)`` of the model input.
        """
        tf = _tf()
        if not isinstance(y_pred, dict) or "raw" not in y_pred or "boxes" not in y_pred:
            keys = sorted(y_pred) if isinstance(y_pred, dict) else type(y_pred).__name__
            raise ModelError(f"the detection loss needs the detector's 'boxes' and 'raw' "
                             f"outputs (build_detector's model, not inference_model). "
                             f"Received: {keys}")
        gt_boxes, gt_classes = split_targets(y_true)
        gt_boxes, gt_classes = _compact(gt_boxes, gt_classes)
        raw = tf.cast(y_pred["raw"], tf.float32)
        pred_boxes = tf.cast(y_pred["boxes"], tf.float32)
        r, c = self.reg_max, self.num_classes
        if raw.shape[-1] is not None and raw.shape[-1] != 4 * r + c:
            raise ModelError(f"the model's 'raw' output has {raw.shape[-1]} channels, the loss "
                             f"expects 4 * reg_max + num_classes = {4 * r + c}. Received: "
                             f"reg_max={r}, num_classes={c}")
        points_np, strides_np = self.anchors(image_size)
        if raw.shape[1] is not None and raw.shape[1] != len(points_np):
            raise ModelError(f"the model has {raw.shape[1]} anchors; image_size "
                             f"{tuple(image_size)} with strides {self.strides} gives "
                             f"{len(points_np)}. Received: image_size={tuple(image_size)}")
        points = tf.constant(points_np)
        strides = tf.constant(strides_np)
        dist_logits = tf.reshape(raw[..., :4 * r], (tf.shape(raw)[0], -1, 4, r))
        cls_logits = raw[..., 4 * r:]

        assigned = task_aligned_assign(
            tf.sigmoid(cls_logits), pred_boxes, points, gt_boxes, gt_classes, num_classes=c,
            topk=self.topk, alpha=self.alpha, beta=self.beta)
        target_scores = assigned.scores
        total_weight = tf.maximum(tf.reduce_sum(target_scores), 1.0)
        fg = tf.cast(assigned.foreground, tf.float32)

        # Classification: BCE over every anchor and class.
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target_scores, logits=cls_logits)
        cls_loss = tf.reduce_sum(bce) / total_weight

        # Box: 1 - CIoU on positives, weighted by their soft target.
        weight = tf.reduce_sum(target_scores, axis=-1) * fg  # (B, A)
        target_boxes = assigned.boxes
        ciou = box_ciou(pred_boxes, target_boxes)
        box_loss = tf.reduce_sum((1.0 - ciou) * weight) / total_weight

        # DFL: each side's distribution against the two bins around the target distance.
        ltrb = tf.concat([points - target_boxes[..., :2], target_boxes[..., 2:] - points], -1)
        ltrb = tf.clip_by_value(ltrb / strides, 0.0, r - 1 - 0.01)
        left = tf.floor(ltrb)
        w_left = left + 1.0 - ltrb
        log_prob = tf.nn.log_softmax(dist_logits, axis=-1)
        left_i = tf.cast(left, tf.int32)
        ce_left = -tf.reduce_sum(tf.one_hot(left_i, r) * log_prob, -1)
        ce_right = -tf.reduce_sum(tf.one_hot(left_i + 1, r) * log_prob, -1)
        dfl_side = ce_left * w_left + ce_right * (1.0 - w_left)  # (B, A, 4)
        dfl_loss = tf.reduce_sum(tf.reduce_mean(dfl_side, -1) * weight) / total_weight

        total = (self.box_weight * box_loss + self.cls_weight * cls_loss
                 + self.dfl_weight * dfl_loss)
        return {"loss": total, "box": box_loss, "cls": cls_loss, "dfl": dfl_loss,
                "positives": tf.reduce_sum(fg)}
