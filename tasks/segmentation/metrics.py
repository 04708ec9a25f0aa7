"""Segmentation scores from a confusion matrix accumulated over a whole dataset.

mIoU, per-class IoU, pixel accuracy and mean Dice are computed once from the summed
confusion matrix of every pixel of the evaluation set (not averaged per batch or per image),
as in the Pascal VOC and Cityscapes benchmarks. Classes absent from both the truth and the
predictions have no IoU and are left out of the means.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import ops

from visionsuite_tasks.segmentation.models import PACKAGE


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """``(C, C)`` int64 counts: rows true class, columns predicted; ``ignore_index`` pixels
    are skipped."""
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    keep = (t != ignore_index) & (t >= 0) & (t < num_classes)
    idx = t[keep] * num_classes + np.clip(p[keep], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(cm: np.ndarray, classes: Sequence[str], background: int | None = None) -> dict:
    """mIoU, per-class IoU and Dice, pixel accuracy and mean Dice from a confusion matrix;
    with a ``background`` class index also the mean Dice and IoU of the other classes
    (``mean_dice_foreground``, ``miou_foreground``), the figures that matter when the
    background dominates."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    total = cm.sum()
    present = ~np.isnan(iou)
    report = {
        "miou": float(np.mean(iou[present])) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "mean_dice": float(np.mean(dice[present])) if present.any() else 0.0,
        "num_pixels": int(total),
        **_foreground(iou, dice, present, background),
        "per_class": {
            name: {"iou": None if np.isnan(i) else float(i),
                   "dice": None if np.isnan(d) else float(d),
                   "pixels": int(s)}
            for name, i, d, s in zip(classes, iou, dice, cm.sum(axis=1))
        },
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
    return report


def _foreground(iou, dice, present, background) -> dict:
    if background is None:
        return {}
    keep = present.copy()
    keep[background] = False
    if not keep.any():
        return {}
    return {"mean_dice_foreground": float(np.mean(dice[keep])),
            "miou_foreground": float(np.mean(iou[keep]))}


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from visionsuite.files import atomic_path

    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_confusion_matrix(cm, classes: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix (recall per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("pixel confusion matrix (row-normalised)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _savefig(fig, path)


def plot_samples(images, truths, preds, colors, path: Path, ignore_index: int = 255) -> None:
    """A grid with one row per sample: image, true mask, predicted mask (class colours;
    ignored pixels white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.asarray(colors, np.uint8)
    palette[ignore_index] = 255
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for row, (img, t, p) in enumerate(zip(images, truths, preds)):
        for col, (pic, title) in enumerate(((img, "image"), (palette[t], "truth"),
                                            (palette[p], "prediction"))):
            axes[row, col].imshow(np.asarray(pic, np.uint8))
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    fig.tight_layout()
    _savefig(fig, path)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelAccuracy(keras.metrics.Metric):
    """Fraction of valid pixels (target not ``ignore_index``) whose argmax class is right,
    accumulated over every batch of an epoch.

    Args:
        ignore_index: target value of pixels that do not count.
        name: metric name.

    Example:
        >>> model.compile(..., metrics=[PixelAccuracy(ignore_index=255)])
    """

    def __init__(self, ignore_index=255, name="pixel_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        valid = ops.cast(ops.not_equal(y_true, self.ignore_index), "float32")
        hit = ops.cast(ops.equal(pred, y_true), "float32") * valid
        self.correct.assign_add(ops.sum(hit))
        self.total.assign_add(ops.sum(valid))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(ignore_index=self.ignore_index)
        return config


def fit_metrics(num_classes: int, ignore_index: int = 255) -> list:
    """Metrics shown during ``fit``: mIoU (Keras' confusion-matrix ``MeanIoU``, accumulated
    over the epoch) and pixel accuracy, both skipping ``ignore_index``."""
    return [keras.metrics.MeanIoU(num_classes=num_classes, name="miou", ignore_class=ignore_index,
                                  sparse_y_true=True, sparse_y_pred=False),
            PixelAccuracy(ignore_index, name="pixel_accuracy")]
