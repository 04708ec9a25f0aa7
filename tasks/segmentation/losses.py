"""Segmentation losses on per-pixel class probabilities, with an ignore index.

Targets are integer masks ``(B, H, W)`` (or ``(B, H, W, 1)``) of class indices; pixels equal
to ``ignore_index`` do not count. Predictions are softmax probabilities ``(B, H, W, C)`` (the
models' output). Each loss returns the mean over the valid pixels of the batch (weighted by
the class weights when given), so ignored pixels neither add to nor dilute the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from visionsuite_tasks.segmentation.models import PACKAGE

EPSILON = 1e-7


def _prepare(y_true, y_pred, ignore_index):
    y_pred = ops.cast(y_pred, "float32")
    num_classes = y_pred.shape[-1]
    y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    valid = ops.cast(ops.not_equal(y_true, ignore_index), "float32")
    labels = ops.where(ops.equal(y_true, ignore_index), 0, y_true)
    onehot = ops.one_hot(labels, num_classes, dtype="float32")
    return y_pred, onehot, valid


class _SegmentationLoss(keras.losses.Loss):
    def __init__(self, ignore_index=255, class_weights=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.class_weights = (None if class_weights is None
                              else [float(w) for w in class_weights])

    def _pixel_weights(self, onehot, valid):
        if self.class_weights is None:
            return valid
        w = ops.convert_to_tensor(self.class_weights, dtype="float32")
        return valid * ops.sum(onehot * w, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(ignore_index=self.ignore_index, class_weights=self.class_weights)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegmentationCrossEntropy(_SegmentationLoss):
    """Per-pixel cross-entropy with class weights and an ignore index.

    Args:
        ignore_index: target value of pixels that do not count.
        class_weights: one weight per class (``None``: all 1); the loss is the weighted
            mean over valid pixels.

    Example:
        >>> loss = SegmentationCrossEntropy(ignore_index=255, class_weights=[0.5, 2.0])
    """

    def call(self, y_true, y_pred):
        probs, onehot, valid = _prepare(y_true, y_pred, self.ignore_index)
        nll = -ops.sum(onehot * ops.log(ops.clip(probs, EPSILON, 1.0)), axis=-1)
        w = self._pixel_weights(onehot, valid)
        return ops.sum(nll * w) / ops.maximum(ops.sum(w), EPSILON)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FocalLoss(_SegmentationLoss):
    """Focal loss ``-(1 - p_t) ** gamma * log(p_t)`` per pixel (Lin et al., 2017).

    Args:
        gamma: focusing parameter (0 gives the cross-entropy).
        ignore_index: target value of pixels that do not count.
        class_weights: per-class weights (the alpha of the paper); ``None``: all 1.

    Example:
        >>> loss = FocalLoss(gamma=2.0)
    """

    def __init__(self, gamma=2.0, ignore_index=255, class_weights=None, name=None, **kwargs):
        super().__init__(ignore_index=ignore_index, class_weights=class_weights, name=name,
                         **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        probs, onehot, valid = _prepare(y_true, y_pred, self.ignore_index)
        p_t = ops.clip(ops.sum(onehot * probs, axis=-1), EPSILON, 1.0)
        loss = -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)
        w = self._pixel_weights(onehot, valid)
        return ops.sum(loss * w) / ops.maximum(ops.sum(w), EPSILON)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiceLoss(_SegmentationLoss):
    """Soft Dice loss ``1 - mean_c (2 |P_c G_c| + s) / (|P_c| + |G_c| + s)`` over the batch.

    Args:
        smooth: the ``s`` above; keeps classes absent from a batch near a Dice of 1.
        ignore_index: target value of pixels that do not count.
        class_weights: per-class weights of the mean over classes; ``None``: all 1.

    Example:
        >>> loss = DiceLoss(smooth=1.0)
    """

    def __init__(self, smooth=1.0, ignore_index=255, class_weights=None, name=None, **kwargs):
        super().__init__(ignore_index=ignore_index, class_weights=class_weights, name=name,
                         **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        probs, onehot, valid = _prepare(y_true, y_pred, self.ignore_index)
        v = valid[..., None]
        axes = tuple(range(len(probs.shape) - 1))
        inter = ops.sum(probs * onehot * v, axis=axes)
        denom = ops.sum(probs * v, axis=axes) + ops.sum(onehot * v, axis=axes)
        dice = (2.0 * inter + self.smooth) / (denom + self.smooth)
        if self.class_weights is None:
            return 1.0 - ops.mean(dice)
        w = ops.convert_to_tensor(self.class_weights, dtype="float32")
        return 1.0 - ops.sum(dice * w) / ops.maximum(ops.sum(w), EPSILON)

    def get_config(self):
        config = super().get_config()
        config.update(smooth=self.smooth)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossEntropyDiceLoss(_SegmentationLoss):
    """``ce_weight * cross-entropy + dice_weight * Dice`` (same ignore index and weights).

    Args:
        ce_weight: factor of the cross-entropy term.
        dice_weight: factor of the Dice term.
        smooth: Dice smoothing.
        ignore_index: target value of pixels that do not count.
        class_weights: per-class weights used by both terms.

    Example:
        >>> loss = CrossEntropyDiceLoss(ce_weight=1.0, dice_weight=1.0)
    """

    def __init__(self, ce_weight=1.0, dice_weight=1.0, smooth=1.0, ignore_index=255,
                 class_weights=None, name=None, **kwargs):
        super().__init__(ignore_index=ignore_index, class_weights=class_weights, name=name,
                         **kwargs)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)
        self._ce = SegmentationCrossEntropy(ignore_index, class_weights)
        self._dice = DiceLoss(smooth, ignore_index, class_weights)

    def call(self, y_true, y_pred):
        return (self.ce_weight * self._ce.call(y_true, y_pred)
                + self.dice_weight * self._dice.call(y_true, y_pred))

    def get_config(self):
        config = super().get_config()
        config.update(ce_weight=self.ce_weight, dice_weight=self.dice_weight, smooth=self.smooth)
        return config


LOSSES = ("cross_entropy", "dice", "focal", "ce_dice")


def make_loss(name: str, *, ignore_index: int = 255,
              class_weights: Sequence[float] | None = None, focal_gamma: float = 2.0):
    """The loss named ``name`` (one of :data:`LOSSES`)."""
    from visionsuite.errors import UsageError

    if name == "cross_entropy":
        return SegmentationCrossEntropy(ignore_index, class_weights, name="cross_entropy")
    if name == "dice":
        return DiceLoss(1.0, ignore_index, class_weights, name="dice")
    if name == "focal":
        return FocalLoss(focal_gamma, ignore_index, class_weights, name="focal")
    if name == "ce_dice":
        return CrossEntropyDiceLoss(1.0, 1.0, 1.0, ignore_index, class_weights, name="ce_dice")
    raise UsageError(f"unknown segmentation loss. Choose from: {', '.join(LOSSES)}. "
                     f"Received: loss={name!r}")
