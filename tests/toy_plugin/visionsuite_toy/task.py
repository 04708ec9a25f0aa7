"""``toy``: square-versus-disc classification on synthetic images, the smallest complete task.

Datasets are ``.npz`` files holding ``images`` (uint8, N x H x W x 3) and ``labels`` (int,
N); :func:`write_toy_dataset` makes one. There is no augmentation: the transforms are
``None`` and ``make_tf_dataset`` only shuffles, resizes and one-hot encodes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError
from visionsuite.task import REPORT_NAME, Dataset, Prediction, Sample, Task, TaskConfig

CLASSES = ("square", "disc")


def write_toy_dataset(path, n: int = 64, size: int = 32, seed: int = 0) -> Path:
    """Write ``n`` images (half squares, half discs, random position and size) to ``path``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = np.arange(n) % 2
    for i, label in enumerate(labels):
        r = rng.integers(size // 6, size // 3)
        cy, cx = rng.integers(r, size - r, 2)
        shape = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) if label == 0 else \
            (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        images[i] = rng.integers(0, 40, (size, size, 3))
        images[i][shape] = rng.integers(180, 256, 3)
    path = Path(path)
    np.savez(path, images=images, labels=labels)
    return path


@dataclasses.dataclass(frozen=True)
class ToyConfig(TaskConfig):
    """Options of the toy task."""

    # (int) side of the square model input, in pixels
    image_size: int = 32
    # (float) label smoothing of the cross-entropy loss
    label_smoothing: float = 0.0
    # (float) dropout before the classifier
    dropout: float = 0.0


@dataclasses.dataclass
class ToyPrediction(Prediction):
    label: str = ""
    score: float = 0.0


class ToyTask(Task):
    """Square-versus-disc classifier.

    Args:
        config: a :class:`ToyConfig`; ``None`` uses the defaults.

    Example:
        >>> task = ToyTask(ToyConfig(image_size=32))
        >>> data = task.load_dataset(write_toy_dataset("toy.npz"))
    """

    name = "toy"
    Config = ToyConfig
    dataset_formats = {"npz": "an .npz file with uint8 `images` (N,H,W,3) and int `labels` (N)"}

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False,
                     classes=None) -> Dataset:
        path = Path(path)
        if classes is not None and tuple(classes) != CLASSES:
            raise DataError(f"toy classes are {CLASSES}. Received: classes={tuple(classes)}")
        if format not in (None, "npz"):
            raise DataError(f"toy reads only the 'npz' format. Received: format={format!r}")
        if not path.is_file():
            raise DataError(f"toy dataset not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                images, labels = f["images"], f["labels"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a toy .npz dataset ({exc})") from exc
        samples = [Sample(img, int(lab), f"{path}[{i}]")
                   for i, (img, lab) in enumerate(zip(images, labels))]
        return Dataset(list(CLASSES), samples)

    def make_tiny_dataset(self, folder, classes):
        """The toy's classes are fixed (square, disc): ``classes`` is ignored."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return write_toy_dataset(Path(folder) / "toy.npz", n=8, size=self.config.image_size)

    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        import tensorflow as tf

        size = self.config.image_size
        x = np.stack([s.image for s in dataset.samples]).astype(np.float32)
        y = np.eye(len(dataset.classes), dtype=np.float32)[[s.target for s in dataset.samples]]
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        if x.shape[1:3] != (size, size):
            ds = ds.map(lambda a, b: (tf.image.resize(a, (size, size)), b))
        return ds.batch(batch_size).prefetch(2)

    # === Model ===
    def build_model(self, backbone, classes: Sequence[str]):
        import keras

        deepest = max(backbone.spec.levels, key=lambda lv: lv.stride).name
        inputs = keras.Input(backbone.spec.input_shape, name="image")
        x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.model(inputs)[deepest])
        if self.config.dropout:
            x = keras.layers.Dropout(self.config.dropout, name="head_dropout")(x)
        x = keras.layers.Dense(len(classes), name="logits")(x)
        out = keras.layers.Activation("softmax", dtype="float32", name="probs")(x)
        return keras.Model(inputs, out, name="toy")

    def loss(self, classes, dataset=None):
        import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing)

    def metrics(self, classes):
        return ["accuracy"]

    def evaluate(self, model, dataset, out_dir=None, *, batch_size=32):
        ds = self.make_tf_dataset(dataset, batch_size=batch_size, training=False)
        probs = np.concatenate([np.asarray(model(x, training=False)) for x, _ in ds])
        y = np.array([s.target for s in dataset.samples])
        metrics = {"accuracy": float(np.mean(probs.argmax(-1) == y)), "samples": len(y)}
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            # Like real tasks, a per-class report the engine must keep beside its own keys.
            per_class = {c: float(np.mean(probs.argmax(-1)[y == i] == i)) if np.any(y == i)
                         else None for i, c in enumerate(dataset.classes)}
            (Path(out_dir) / REPORT_NAME).write_text(json.dumps(dict(metrics, per_class=per_class)))
        return metrics

    # === Inference ===
    def postprocess(self, outputs, meta, classes):
        raw = outputs["probabilities"]
        i = int(np.argmax(raw))
        return ToyPrediction(classes=list(classes), label=classes[i], score=float(raw[i]))

    def render(self, image_bgr, prediction):
        import cv2

        out = image_bgr.copy()
        cv2.putText(out, f"{prediction.label} {prediction.score:.2f}", (2, 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
        return out

    def to_record(self, prediction):
        return {"label": prediction.label, "score": prediction.score}
