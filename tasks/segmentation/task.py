"""The semantic segmentation task: one class per pixel."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite.files import write_json_atomic
from visionsuite.specs import OutputSpec
from visionsuite.streams.state import FrameState
from visionsuite.task import REPORT_NAME, Dataset, ImageTask, ImageTaskConfig, Prediction, TaskOption
from visionsuite_tasks.segmentation import readers
from visionsuite_tasks.segmentation.readers import IGNORE


@dataclasses.dataclass(frozen=True)
class SegmentationConfig(ImageTaskConfig):
    """Options of the segmentation task (``--set task.<key>=value`` / YAML ``task:``); the
    image and augmentation options come from :class:`~visionsuite.task.ImageTaskConfig`."""

    # (int) side of the square model input, in pixels
    image_size: int = 256
    # (str) decoder head: "lraspp" (light, real time), "deeplabv3_plus" or "unet"
    head: typing.Literal["lraspp", "deeplabv3_plus", "unet"] = "lraspp"
    # (int) width of the head's convolutions
    head_channels: int = 128
    # (int) stride of the context features (32, 16 or 8; deeplabv3_plus and lraspp)
    output_stride: int = 16
    # (float) dropout before the classifier, in [0, 1)
    dropout: float = 0.1
    # (float) momentum of every BatchNormalization moving average (backbone and head);
    # 0 keeps the backbone's own (keras.applications use 0.999, which needs thousands of
    # steps before evaluation-mode statistics are usable when training from scratch)
    bn_momentum: float = 0.99
    # (str) "cross_entropy", "dice", "focal" or "ce_dice"
    loss: typing.Literal["cross_entropy", "dice", "focal", "ce_dice"] = "cross_entropy"
    # (float) focal loss gamma
    focal_gamma: float = 2.0
    # (bool) weight the loss by inverse class frequency in the training masks
    class_weights: bool = False
    # (str) class-map YAML; default: classes.yaml next to the data
    class_map: str = ""
    # (bool) read every mask when loading a dataset: check values and sizes, count pixels
    check_masks: bool = True
    # (float) temporal smoothing of class probabilities across frames of a stream: weight
    # of the previous frames' average (EMA), in [0, 1); 0 = off
    smoothing: float = 0.0
    # (bool) streams run the model's stream variant: uint8 class ids (and low-resolution
    # scores) at the head's native resolution, resized once to the frame -- several times
    # less work per frame; mask edges may move by up to one head stride (8 px of the input
    # for LR-ASPP). Off: the full-resolution probabilities, as evaluation sees them
    native_labels: bool = False
    # (float) opacity of the coloured overlay, in [0, 1]
    alpha: float = 0.5
    # (bool) draw the legend (class colours and area fractions)
    legend: bool = True
    # (str) folder where each predicted mask is written as a palette PNG ("" = none)
    mask_dir: str = ""
    # (int) rows of the sample-prediction grid written by evaluate
    eval_samples: int = 6

    def __post_init__(self):
        super().__post_init__()
        self.check(
            (self.image_size >= 32, "segmentation: image_size must be >= 32", "image_size"),
            (self.head_channels >= 4, "segmentation: head_channels must be >= 4",
             "head_channels"),
            (self.output_stride in (8, 16, 32), "segmentation: output_stride must be 8, 16 "
             "or 32", "output_stride"),
            (0.0 <= self.dropout < 1.0, "segmentation: dropout must be in [0, 1)", "dropout"),
            (0.0 <= self.bn_momentum < 1.0, "segmentation: bn_momentum must be in [0, 1)",
             "bn_momentum"),
            (self.focal_gamma >= 0, "segmentation: focal_gamma must be >= 0", "focal_gamma"),
            (0.0 <= self.smoothing < 1.0, "segmentation: smoothing must be in [0, 1)",
             "smoothing"),
            (0.0 <= self.alpha <= 1.0, "segmentation: alpha must be in [0, 1]", "alpha"),
            (self.eval_samples >= 0, "segmentation: eval_samples must be >= 0",
             "eval_samples"),
        )


@dataclasses.dataclass
class SegmentationPrediction(Prediction):
    """The class mask of one image at its own size, and the share of each class.

    Args:
        classes: class names (index order of ``mask``).
        mask: ``(H, W)`` uint8 class indices.
        fractions: fraction of the image's pixels in each class.
        meta: what ``preprocess`` (and the stream engine) recorded: size, source, frame.
        labels: the small class map ``mask`` is a nearest-neighbour resize of (a stream
            model's head resolution), or ``None``; rendering colours it before resizing.
    """

    mask: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.uint8))
    fractions: list[float] = dataclasses.field(default_factory=list)
    meta: dict = dataclasses.field(default_factory=dict)
    labels: np.ndarray | None = None


class SegmentationTask(ImageTask):
    """Semantic segmentation on any backbone: DeepLabV3+, LR-ASPP or a U-Net decoder.

    The model takes RGB pixels in ``[0, 255]`` (input ``"image"``) and returns per-pixel
    class probabilities at the input resolution (output ``"probabilities"``). Datasets are
    image + mask folders or CSV manifests with a class-map YAML (see
    :mod:`visionsuite_tasks.segmentation.readers`). Without ``--model``, ``visionsuite run
    segmentation`` uses MediaPipe's selfie (person) segmentation (:meth:`default_model`).

    Args:
        config: a :class:`SegmentationConfig`; ``None`` uses the defaults.

    Example:
        >>> task = SegmentationTask(SegmentationConfig(image_size=128, head="lraspp"))
        >>> train = task.load_dataset("datasets/shapes", split="train")
        >>> model = task.build_model(build_backbone("mobilenet_v3_large", (128, 128, 3)),
        ...                          train.classes)
        >>> model.compile(optimizer="adam", loss=task.loss(train.classes, train),
        ...               metrics=task.metrics(train.classes))
        >>> model.fit(task.make_tf_dataset(train, batch_size=16, training=True))
    """

    name = "segmentation"
    Config = SegmentationConfig
    dataset_formats = readers.FORMATS
    keras_modules = ("visionsuite_tasks.segmentation.models",
                     "visionsuite_tasks.segmentation.losses",
                     "visionsuite_tasks.segmentation.metrics")
    options = (
        TaskOption("alpha", "overlay opacity in [0, 1]"),
        TaskOption("smoothing", "temporal smoothing of class probabilities across frames: "
                                "EMA weight of the past in [0, 1)", flag="--smooth"),
        TaskOption("legend", "draw the legend (--no-legend: off)"),
        TaskOption("mask_dir", "folder for one palette PNG mask per frame or image"),
        TaskOption("native_labels", "run the model's stream variant: class ids at the head's "
                                    "native resolution, resized once (faster; edges move by "
                                    "up to one head stride)"),
    )

    def output_specs(self):
        return (OutputSpec("probabilities", (None, None, None)),)

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False,
                     classes=None) -> Dataset:
        """Read a dataset (formats: :data:`~visionsuite_tasks.segmentation.readers.FORMATS`).
        The classes come from the class map; ``classes`` must equal them."""
        from visionsuite.data.images import warn_skipped

        data = readers.read_dataset(path, split=split, format=format, strict=strict,
                                    class_map=self.config.class_map or None,
                                    check_masks=self.config.check_masks, classes=classes)
        if classes is not None and list(classes) != list(data.classes):
            raise DataError(f"{path}: the class map's classes {list(data.classes)} differ from "
                            f"the expected {list(classes)}")
        warn_skipped(data.skipped, str(path))
        return data

    def make_tiny_dataset(self, folder, classes):
        """Images with one disc per foreground class and their masks, plus classes.yaml."""
        import cv2
        import yaml

        root = Path(folder)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(6):
            image = rng.integers(0, 60, (40, 48, 3), dtype=np.uint8)
            mask = np.zeros((40, 48), np.uint8)
            for k in range(1, len(classes)):
                centre = (int(rng.integers(8, 40)), int(rng.integers(8, 32)))
                cv2.circle(mask, centre, 7, k, -1)
                image[mask == k] = (60 * k) % 256
            cv2.imwrite(str(root / "images" / f"{i}.png"), image)
            cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
        (root / "classes.yaml").write_text(yaml.safe_dump({"classes": list(classes)}))
        return root

    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        """Batches of ``(images float32 (B, S, S, 3) in [0, 255], masks int32 (B, S, S))``;
        ignored pixels hold 255."""
        import tensorflow as tf

        from visionsuite.data.pipeline import load_rgb, make_tf_dataset

        def load(sample):
            target = sample.target
            if not isinstance(target, readers.MaskTarget):
                raise DataError(f"{sample.source or sample.image}: a segmentation sample needs "
                                f"a mask target. Received: {type(target).__name__}")
            image = load_rgb(sample)
            mask = readers.read_mask(target.path, target.class_map, check=False)
            if mask.shape != image.shape[:2]:
                raise DataError(f"mask {target.path} is {mask.shape[1]}x{mask.shape[0]} but its "
                                f"image {sample.image} is {image.shape[1]}x{image.shape[0]}")
            return {"image": image, "mask": mask}

        def to_arrays(out, sample):
            return out["image"], out["mask"]

        size = self.config.image_size
        signature = (tf.TensorSpec((size, size, 3), tf.float32),
                     tf.TensorSpec((size, size), tf.int32))
        # Geometric steps apply to image and mask jointly (nearest-neighbour for the mask).
        transform = self._train_transform() if training else self._eval_transform()
        return make_tf_dataset(dataset, output_signature=signature, batch_size=batch_size,
                               training=training, load=load, transform=transform,
                               to_arrays=to_arrays, seed=seed)

    # === Model ===
    def build_model(self, backbone, classes: Sequence[str]):
        from visionsuite_tasks.segmentation.models import build_head, set_bn_momentum

        cfg = self.config
        shape = tuple(backbone.spec.input_shape)
        if shape != (cfg.image_size, cfg.image_size, 3):
            raise UsageError(f"the backbone was built for input {shape} but the task uses "
                             f"image_size={cfg.image_size}. Received: input_shape={shape}")
        if len(classes) < 2:
            raise DataError(f"segmentation needs at least 2 classes. Received: classes={list(classes)}")
        model = build_head(cfg.head, backbone, len(classes), channels=cfg.head_channels,
                           output_stride=cfg.output_stride, dropout=cfg.dropout)
        if cfg.bn_momentum:
            set_bn_momentum(model, cfg.bn_momentum)
        return model

    def loss(self, classes: Sequence[str], dataset: Dataset | None = None):
        from visionsuite_tasks.segmentation.losses import make_loss

        weights = None
        if self.config.class_weights:
            if dataset is None:
                raise UsageError("class_weights=true needs the training set to count pixels")
            weights = readers.class_weights(dataset).tolist()
        return make_loss(self.config.loss, ignore_index=IGNORE, class_weights=weights,
                         focal_gamma=self.config.focal_gamma)

    def metrics(self, classes: Sequence[str]) -> list:
        from visionsuite_tasks.segmentation.metrics import fit_metrics

        return fit_metrics(len(classes), IGNORE)

    def evaluate(self, model, dataset: Dataset, out_dir: Path | None = None, *,
                 batch_size: int = 32) -> dict[str, float]:
        """mIoU, pixel accuracy and mean Dice from one confusion matrix over every pixel of
        ``dataset`` (at the model's input size; masks resized with nearest neighbour). With
        ``out_dir``: ``evaluation.json`` (per-class IoU / Dice, confusion matrix; the engine
        writes the flat scores to ``metrics.json``),
        ``confusion_matrix.png`` and ``samples.png`` (image, truth, prediction)."""
        from visionsuite_tasks.segmentation import metrics as seg_metrics
        from visionsuite_tasks.segmentation.render import class_colors

        n = len(dataset.classes)
        units = int(model.outputs[0].shape[-1])
        if units != n:
            raise ModelError(f"the model has {units} output classes but the dataset has {n} "
                             f"({', '.join(dataset.classes[:10])})")
        ds = self.make_tf_dataset(dataset, batch_size=batch_size, training=False)
        cm = np.zeros((n, n), np.int64)
        keep = self.config.eval_samples if out_dir is not None else 0
        shown: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for x, y in ds:
            probs = np.asarray(model.predict_on_batch(x))
            pred = probs.argmax(axis=-1).astype(np.uint8)
            y = y.numpy()
            cm += seg_metrics.confusion_matrix(y, pred, n, IGNORE)
            for i in range(min(len(pred), keep - len(shown))):
                shown.append((x[i].numpy().astype(np.uint8), y[i].astype(np.uint8), pred[i]))
        from visionsuite_tasks.segmentation.render import background_index

        report = seg_metrics.scores(cm, dataset.classes, background_index(dataset.classes))
        report["num_samples"] = len(dataset)
        if out_dir is not None:
            out_dir = Path(out_dir)
            seg_metrics.plot_confusion_matrix(cm, dataset.classes, out_dir / "confusion_matrix.png")
            if shown:
                seg_metrics.plot_samples(*zip(*shown), class_colors(dataset.classes),
                                         out_dir / "samples.png", IGNORE)
            write_json_atomic(out_dir / REPORT_NAME, report, sort_keys=True)
        out = {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}
        for name, row in report["per_class"].items():
            for key in ("iou", "dice"):
                if row.get(key) is not None:
                    out[f"{key}/{name}"] = row[key]
        return out

    # === Inference ===
    def default_model(self):
        """MediaPipe's selfie segmentation (classes background / person) as a visionsuite
        ``.tflite`` model, built once into the cache from the ``mediapipe==0.10.21`` wheel
        (see :mod:`visionsuite_tasks.segmentation.pretrained`)."""
        from visionsuite_tasks.segmentation.pretrained import selfie_segmentation_model

        return selfie_segmentation_model()

    def new_state(self, source, spec, classes):
        """One frame -> one mask; with ``smoothing`` the class probabilities are averaged
        over the frames of the source (EMA), restarted with the state: the low-resolution
        ``scores`` of a stream model, else ``probabilities``."""
        return _SegmentationState(self, source, spec, classes,
                                  smooth={"scores": self.config.smoothing,
                                          "probabilities": self.config.smoothing})

    def stream_model(self, model):
        """With ``native_labels``: :func:`~visionsuite_tasks.segmentation.models.stream_model`,
        uint8 ``labels`` and ``scores`` at the head's native resolution (``None`` when the
        option is off, or for a model not built by :meth:`build_model`)."""
        from visionsuite_tasks.segmentation.models import stream_model

        if not self.config.native_labels:
            return None
        if model is None:  # the runtime asks whether there will be a variant
            return True
        try:
            fast = stream_model(model)
        except (ValueError, AttributeError, TypeError):
            return None
        return fast, (OutputSpec("labels", (None, None), "uint8"),
                      OutputSpec("scores", (None, None, None)))

    def postprocess(self, outputs, meta: dict, classes: Sequence[str]):
        """Model outputs -> a :class:`SegmentationPrediction` at the image's size
        (``meta["height"]``, ``meta["width"]``). The outputs it reads, cheapest first (see
        :func:`~visionsuite_tasks.segmentation.models.stream_model`):

        * ``labels`` -- uint8 class ids at any resolution (the head's native one): one
          nearest-neighbour resize of the label map to the image; with ``smoothing``,
          ``scores`` is averaged instead and its argmax resized the same way;
        * ``scores`` of a two-class model, or one channel ``(S, S, 1)`` of class-1 probability
          (MediaPipe's selfie model): one float channel (the class-1 margin) is resized
          bilinearly and thresholded -- the same mask as the argmax of the two resized
          channels, for the price of one;
        * ``probabilities`` ``(S, S, C)`` (every model; evaluation reads it): resized bilinearly
          to the image, then argmax (smooth edges, the most work).
        """
        if not outputs:
            raise ModelError("a segmentation model has at least one output. Received: {}")
        n = len(classes)
        h, w = int(meta.get("height", 0)), int(meta.get("width", 0))
        if "labels" in outputs and not (self.config.smoothing and "scores" in outputs) \
                and not (n == 2 and "scores" in outputs):
            labels = _squeeze(outputs["labels"])
            if labels.ndim != 2:
                raise ModelError(f"a segmentation model's labels are (H, W) class ids. "
                                 f"Received: shape={tuple(labels.shape)}")
            labels = np.asarray(labels).astype(np.uint8, copy=False)
            mask, counts = _resize_labels(labels, h, w), _nearest_counts(labels, h, w, n)
        else:
            counts = None
            name = ("scores" if "scores" in outputs else "probabilities" if "probabilities"
                    in outputs else next(iter(outputs)))
            probs = _squeeze(np.asarray(outputs[name], dtype=np.float32))
            if probs.ndim == 3 and probs.shape[-1] in (1, 2) and n == 2:
                # one class-1 margin channel: argmax of two channels == margin > 0
                margin = (probs[..., 0] - 0.5 if probs.shape[-1] == 1
                          else probs[..., 1] - probs[..., 0])
                mask = _threshold(_resize_float(np.ascontiguousarray(margin), h, w))
            elif probs.ndim != 3 or probs.shape[-1] != n:
                raise ModelError(f"a segmentation model outputs (H, W, {n}) class "
                                 f"probabilities. Received: shape={tuple(probs.shape)}")
            elif name == "scores":  # low resolution: argmax there, one uint8 resize
                labels = probs.argmax(axis=-1).astype(np.uint8)
                mask, counts = _resize_labels(labels, h, w), _nearest_counts(labels, h, w, n)
            else:  # full resolution: upsample probabilities, not labels (smooth edges)
                if (h or probs.shape[0], w or probs.shape[1]) != probs.shape[:2]:
                    import cv2

                    probs = cv2.resize(probs, (w, h), interpolation=cv2.INTER_LINEAR)
                    if probs.ndim == 2:
                        probs = probs[..., None]
                mask = probs.argmax(axis=-1).astype(np.uint8)
        if counts is None:
            labels = None
            counts = np.bincount(mask.reshape(-1), minlength=n)[:n]
        fractions = (counts / max(mask.size, 1)).tolist()
        return SegmentationPrediction(classes=list(classes), mask=mask, fractions=fractions,
                                      meta=dict(meta), labels=labels)

    def render(self, image_bgr: np.ndarray, prediction: SegmentationPrediction) -> np.ndarray:
        """The frame with a coloured overlay (``alpha``; background left clear) and a legend
        of the classes present with their area fractions."""
        import cv2

        from visionsuite_tasks.segmentation.render import (background_index, class_colors,
                                                           draw_legend, overlay)

        mask, labels = prediction.mask, prediction.labels
        if mask.shape != image_bgr.shape[:2]:
            mask = cv2.resize(mask, (image_bgr.shape[1], image_bgr.shape[0]),
                              interpolation=cv2.INTER_NEAREST)
            labels = None
        colors = class_colors(prediction.classes)
        bg = background_index(prediction.classes)
        out = overlay(image_bgr, mask, colors, alpha=self.config.alpha, skip=bg,
                      labels=labels)
        if self.config.legend:
            shown = [k for k in range(len(prediction.classes))
                     if k != bg and prediction.fractions[k] > 0]
            if len(prediction.classes) <= 8:  # small label sets: always the full legend
                shown = [k for k in range(len(prediction.classes)) if k != bg]
            shown = sorted(shown, key=lambda k: -prediction.fractions[k])[:12]
            draw_legend(out, [prediction.classes[k] for k in shown], colors[shown],
                        [prediction.fractions[k] for k in shown])
        return out

    def to_record(self, prediction: SegmentationPrediction) -> dict:
        """``{"fractions": {class: share of pixels}, "dominant": class}``; the mask sink
        (``mask_dir``) adds ``"mask"``, the PNG it wrote."""
        fractions = {name: round(float(f), 6) for name, f in
                     zip(prediction.classes, prediction.fractions)}
        from visionsuite_tasks.segmentation.render import background_index

        bg = background_index(prediction.classes)
        fg = [k for k in range(len(prediction.classes)) if k != bg]
        dominant = max(fg, key=lambda k: prediction.fractions[k]) if fg else None
        return {"fractions": fractions,
                "dominant": prediction.classes[dominant] if dominant is not None and
                prediction.fractions[dominant] > 0 else None}

    def sinks(self) -> list:
        """A :class:`~visionsuite_tasks.segmentation.render.MaskSink` when ``mask_dir`` is set."""
        from visionsuite_tasks.segmentation.render import MaskSink

        return [MaskSink(self.config.mask_dir)] if self.config.mask_dir else []


class _SegmentationState(FrameState):
    """A :class:`~visionsuite.streams.state.FrameState` that smooths ``scores`` when the
    model has them (a stream model) and ``probabilities`` otherwise, never both."""

    def merge(self, outputs, ctx):
        if self.smooth and "scores" in outputs and "probabilities" in self.smooth:
            self.smooth.pop("probabilities")
        return super().merge(outputs, ctx)


def _squeeze(a):
    a = np.asarray(a)
    return a[0] if a.ndim == 4 and a.shape[0] == 1 else a


def _resize_labels(labels: np.ndarray, h: int, w: int) -> np.ndarray:
    """One nearest-neighbour resize of a uint8 label map to ``(h, w)`` (0 keeps a side)."""
    h, w = h or labels.shape[0], w or labels.shape[1]
    if (h, w) == labels.shape:
        return np.ascontiguousarray(labels)
    import cv2

    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


@functools.lru_cache(maxsize=32)
def _nearest_repeats(src: int, dst: int) -> np.ndarray:
    """How many of ``dst`` output rows (or columns) OpenCV's nearest-neighbour resize takes
    from each of ``src`` input ones, read off a resize of the indices themselves."""
    import cv2

    index = np.arange(src, dtype=np.uint16).reshape(src, 1)
    taken = cv2.resize(index, (1, dst), interpolation=cv2.INTER_NEAREST).reshape(-1)
    return np.bincount(taken, minlength=src).astype(np.float64)


def _nearest_counts(labels: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    """Pixels of each of ``n`` classes in :func:`_resize_labels` ``(labels, h, w)``, counted
    on the small label map (each of its pixels weighted by the output pixels it becomes):
    the same counts as a ``bincount`` of the resized mask, for a 64x64 map instead of the
    frame (2-3 ms a 640x480 frame saved)."""
    sh, sw = labels.shape
    h, w = h or sh, w or sw
    if sh > 65535 or sw > 65535:
        return np.bincount(_resize_labels(labels, h, w).reshape(-1), minlength=n)[:n]
    weights = np.outer(_nearest_repeats(sh, h), _nearest_repeats(sw, w)).reshape(-1)
    counts = np.bincount(labels.reshape(-1), weights=weights, minlength=n)[:n]
    return np.rint(counts).astype(np.int64)


def _resize_float(channel: np.ndarray, h: int, w: int) -> np.ndarray:
    h, w = h or channel.shape[0], w or channel.shape[1]
    if (h, w) == channel.shape:
        return channel
    import cv2

    return cv2.resize(channel, (w, h), interpolation=cv2.INTER_LINEAR)


def _threshold(margin: np.ndarray) -> np.ndarray:
    """uint8 mask: 1 where ``margin > 0``."""
    return (margin > 0).view(np.uint8)
