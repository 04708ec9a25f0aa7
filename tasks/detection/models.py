"""An anchor-free, YOLOv8-style detector on the P3-P5 levels of any registry backbone.

Architecture (YOLOv8's neck and head, on a :mod:`visionsuite.backbones` backbone):

* **neck**: SPPF on the stride-32 features, then a PAN/FPN: top-down (upsample, concatenate,
  C2f) from P5 to P3, bottom-up (stride-2 convolution, concatenate, C2f) back to P5;
* **head**: decoupled per level -- a box branch (two 3x3 convolutions, then ``4 * reg_max``
  logits: a distribution over ``reg_max`` bins of the distance from the anchor point to each
  side, in stride units) and a classification branch (two 3x3 convolutions, then one logit
  per class, biased to a prior of ~5 objects per image);
* **decode** inside the graph: softmax over the bins, expected distance, ``xyxy`` boxes in
  input pixels. Anchor points are the centres of the cells of each level, ``(x + 0.5) *
  stride``; anchors are ordered P3, P4, P5, each row-major.

C2f block: a 1x1 convolution split in two halves (built here as two 1x1 convolutions, which
is the same function), ``n`` bottlenecks on the second half each appending its output, and a
1x1 convolution over the concatenation. Every convolution is Conv2D + BatchNorm + SiLU.

Sizes (:data:`SIZES`): YOLOv8's width/depth multipliers and channel cap applied to the neck
and head (``n``: depth 0.33, width 0.25 -> neck channels 64/128/256 at P3/P4/P5; ``s``:
width 0.5 -> 128/256/512). The backbone is whatever the registry builds; the backbone's own
width is set through its architecture keywords (``alpha=`` for MobileNetV3...).

Outputs (a dict; float32 even under mixed precision), for ``A`` anchors and ``C`` classes:

* ``"boxes"``: ``(N, A, 4)`` decoded ``x1, y1, x2, y2`` in input pixels;
* ``"scores"``: ``(N, A, C)`` sigmoid class scores;
* ``"raw"``: ``(N, A, 4 * reg_max + C)``: the box-distribution logits (side-major: left,
  top, right, bottom, each ``reg_max`` bins) then the class logits. Only the loss uses it;
  :func:`inference_model` gives the same network without it (for export).

Measured (``tools/bench/detector_speed.py``, 640x640, 80 classes, random weights, LiteRT
fp32, batch 1, one thread; 2-vCPU AVX-512 VM shared with other jobs, 2026-12-02): ``n`` on
``mobilenet_v3_large`` has 5.14 M parameters (backbone 3.00 M) and 9.39 GFLOPs (2 x
multiply-adds; backbone 3.47); 9.5 FPS (105 ms) at load 3.7, i.e. 90 GFLOP/s = 0.66 x the
single-thread float32 matmul peak measured in the same run (136 GFLOP/s); 5.5 FPS at load 8.9
(0.56 x that run's peak). ``separable_cls`` takes it to 7.65 GFLOPs but is *slower* in LiteRT
(0.42-0.52 x peak: depthwise layers are memory-bound). ``n`` on ``efficientnet_lite0``: 5.60 M
parameters, 12.2 GFLOPs, 7.3 FPS (0.56 x peak); on ``mobilenet_v3_small`` with
``separable_cls``: 2.59 M, 4.91 GFLOPs, 10.8 FPS (0.50 x peak).

Training: :class:`Detector` is a functional ``keras.Model`` whose ``compile(loss=...)``
takes a :class:`~visionsuite_tasks.detection.losses.DetectionLoss` (``None``: the default
one) and whose ``compute_loss`` applies it to ``y = {"boxes": (B, M, 4) xyxy pixels padded
with -1, "classes": (B, M) padded with -1}``; ``fit`` logs ``loss`` plus ``box_loss``,
``cls_loss`` and ``dfl_loss``. Non-maximum suppression is not part of the model.

Wiring into a task::

    build_model(backbone, classes)  -> build_detector(backbone, len(classes), size=...)
    loss(classes, dataset)          -> DetectionLoss(len(classes))   # metrics(): []
    make_tf_dataset(...)            -> (image (B, H, W, 3) float32 in [0, 255],
                                        {"boxes": (B, M, 4), "classes": (B, M)} padded with -1)
    output_specs()                  -> "boxes" (A, 4), "scores" (A, C)
    export                          -> inference_model(model): the same graph without "raw"
    extra fit callbacks             -> training.ModelEMA() (after the engine's own callback)
    keras_modules                   -> ("visionsuite_tasks.detection.models",
                                        "visionsuite_tasks.detection.losses",
                                        "visionsuite_tasks.detection.training")

Trained through ``visionsuite.training.trainer.train`` on 384 synthetic images (bright
rectangles, 3 classes, 96 px; ``simple_cnn`` widths 16-128, ``n`` with width 0.125), 30
epochs with EMA: held-out AP50 0.987 (VOC-style, after NMS), 7 min on 2 busy cores.

Public API::

    build_detector(backbone, num_classes, size="n", *, width=None, depth=None,
                   max_channels=None, reg_max=16, separable_cls=False, name=None) -> Detector
    inference_model(detector) -> keras.Model          # {"boxes", "scores"} only
    make_anchors(image_size, strides=(8, 16, 32)) -> (points (A, 2), strides (A, 1))
    decode_distances(logits, points, strides, reg_max=16) -> boxes (..., A, 4)
    detector_size(size) -> dict(depth, width, max_channels)
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from visionsuite.errors import UsageError

PACKAGE = "visionsuite_detection"
STRIDES = (8, 16, 32)
LEVELS = ("P3", "P4", "P5")
# size -> (depth multiple, width multiple, max channels): YOLOv8's scales.
SIZES = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}
# Base channels of the neck outputs at P3, P4, P5 (before the width multiple) and the base
# number of bottlenecks in each C2f block (before the depth multiple).
NECK_CHANNELS = (256, 512, 1024)
NECK_DEPTH = 3
BN_MOMENTUM = 0.97
BN_EPSILON = 1e-3


def detector_size(size: str) -> dict:
    """The depth multiple, width multiple and channel cap of a named size."""
    if size not in SIZES:
        raise UsageError(f"unknown detector size. Choose from: {', '.join(SIZES)}. "
                         f"Received: size={size!r}")
    depth, width, max_channels = SIZES[size]
    return dict(depth=depth, width=width, max_channels=max_channels)


def make_anchors(image_size, strides=STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points (cell centres, in input pixels) and their strides.

    Args:
        image_size: ``(height, width)`` of the model input, multiples of the largest stride.
        strides: the strides of the levels, in output order.

    Returns:
        ``points`` ``(A, 2)`` float32 ``(x, y)`` and ``strides`` ``(A, 1)`` float32, levels
        in order, each row-major.
    """
    height, width = (int(v) for v in image_size)
    points, sizes = [], []
    for stride in strides:
        h, w = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32),
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        points.append((grid + 0.5) * stride)
        sizes.append(np.full((h * w, 1), stride, np.float32))
    return (np.concatenate(points).astype(np.float32),
            np.concatenate(sizes).astype(np.float32))


def decode_distances(logits, points, strides, reg_max: int = 16):
    """Box-distribution logits -> ``xyxy`` boxes.

    Args:
        logits: ``(A, 4 * reg_max)`` or ``(N, A, 4 * reg_max)``: per side (left, top, right, bottom) ``reg_max``
            logits over the distances ``0 .. reg_max - 1`` in stride units.
        points: ``(A, 2)`` anchor points ``(x, y)``.
        strides: ``(A, 1)`` stride of each anchor.
        reg_max: bins per side.

    Returns:
        ``(..., A, 4)`` boxes ``x1, y1, x2, y2`` in the units of ``points``.
    """
    anchors = logits.shape[-2]
    lead = (anchors,) if len(logits.shape) == 2 else (-1, anchors)
    dist = ops.reshape(logits, (*lead, 4, reg_max))
    prob = ops.softmax(dist, axis=-1)
    bins = ops.arange(reg_max, dtype=prob.dtype)
    dist = ops.sum(prob * bins, axis=-1) * ops.cast(strides, prob.dtype)
    points = ops.cast(points, prob.dtype)
    return ops.concatenate([points - dist[..., :2], points + dist[..., 2:]], axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DistanceDecode(keras.layers.Layer):
    """Decodes box-distribution logits ``(N, A, 4 * reg_max)`` into ``xyxy`` boxes in input
    pixels (the softmax expectation of each side's distance, times the anchor's stride).

    Args:
        image_size: ``(height, width)`` of the model input.
        strides: level strides, in the order of the anchors.
        reg_max: bins per side.

    Example:
        >>> boxes = DistanceDecode((64, 96), name="boxes")(box_logits)  # (N, 144, 4)
    """

    def __init__(self, image_size, strides=STRIDES, reg_max=16, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = tuple(int(v) for v in image_size)
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = int(reg_max)
        points, sizes = make_anchors(self.image_size, self.strides)
        self._points, self._sizes = points, sizes

    def call(self, logits):
        return decode_distances(ops.cast(logits, "float32"), self._points, self._sizes,
                                self.reg_max)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 4)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, strides=self.strides, reg_max=self.reg_max)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class Detector(keras.Model):
    """A functional detector model that trains with its own detection loss.

    Built by :func:`build_detector`; the graph is an ordinary functional model with the
    outputs ``"boxes"``, ``"scores"`` and ``"raw"`` (see the module docstring), so it saves
    and loads (safe mode) like any functional model. What this class adds:

    * ``compile(optimizer, loss=None, ...)``: ``loss`` is a
      :class:`~visionsuite_tasks.detection.losses.DetectionLoss` or ``None`` for the default
      one (YOLOv8's weights box 7.5, cls 0.5, dfl 1.5); Keras' per-output loss machinery is
      bypassed because the loss needs the whole output dict at once (``metrics`` must be
      empty: Keras metrics cannot read padded box targets);
    * ``compute_loss``: the detection loss of ``y`` (``{"boxes": (B, M, 4), "classes":
      (B, M)}`` padded with -1, or a ``(boxes, classes)`` tuple), plus regularisation losses;
      it also updates the ``box_loss``, ``cls_loss`` and ``dfl_loss`` metrics.

    Example:
        >>> model = build_detector(build_backbone("simple_cnn", (64, 96, 3)), 3, size="n")
        >>> model.compile(keras.optimizers.AdamW(1e-3))
        >>> model.fit(images, {"boxes": boxes, "classes": classes}, epochs=10)
        >>> out = model.predict(images)  # out["boxes"] (N, A, 4), out["scores"] (N, A, 3)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.detection_loss = None
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.cls_loss_tracker = keras.metrics.Mean(name="cls_loss")
        self.dfl_loss_tracker = keras.metrics.Mean(name="dfl_loss")

    # === Head description (read from the graph) ===
    @property
    def image_size(self) -> tuple[int, int]:
        return self.get_layer("boxes").image_size

    @property
    def strides(self) -> tuple[int, ...]:
        return self.get_layer("boxes").strides

    @property
    def reg_max(self) -> int:
        return self.get_layer("boxes").reg_max

    @property
    def num_classes(self) -> int:
        return int(self.get_layer("scores").output.shape[-1])

    # === Training ===
    def default_loss(self):
        from visionsuite_tasks.detection.losses import DetectionLoss

        return DetectionLoss(self.num_classes, reg_max=self.reg_max, strides=self.strides)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                **kwargs):
        from visionsuite_tasks.detection.losses import DetectionLoss

        if loss is not None and not isinstance(loss, DetectionLoss):
            raise UsageError(f"a Detector trains with a DetectionLoss (or loss=None for the "
                             f"default one). Received: loss={loss!r}")
        if loss_weights is not None:
            raise UsageError(f"set the box/cls/dfl weights on the DetectionLoss, not with "
                             f"loss_weights. Received: loss_weights={loss_weights!r}")
        if loss is not None:
            if loss.num_classes != self.num_classes or loss.reg_max != self.reg_max or tuple(
                    loss.strides) != tuple(self.strides):
                raise UsageError(
                    f"the DetectionLoss does not match the model (num_classes "
                    f"{self.num_classes}, reg_max {self.reg_max}, strides {self.strides}). "
                    f"Received: num_classes={loss.num_classes}, reg_max={loss.reg_max}, "
                    f"strides={tuple(loss.strides)}")
        if metrics or kwargs.get("weighted_metrics"):
            raise UsageError(f"Keras metrics do not apply to a Detector's padded targets; fit "
                             f"logs box_loss, cls_loss and dfl_loss, and detection scores come "
                             f"from COCO evaluation. Received: metrics={metrics!r}")
        kwargs.pop("weighted_metrics", None)
        self.detection_loss = loss if loss is not None else self.default_loss()
        super().compile(optimizer=optimizer, loss=None, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        from keras.src.losses.loss import scale_loss_for_distribution

        if y is None:
            raise UsageError("a Detector needs targets {'boxes': (B, M, 4), 'classes': "
                             "(B, M)} to compute its loss. Received: y=None")
        loss_fn = self.detection_loss or self.default_loss()
        terms = loss_fn.terms(y, y_pred, self.image_size)
        self.box_loss_tracker.update_state(terms["box"])
        self.cls_loss_tracker.update_state(terms["cls"])
        self.dfl_loss_tracker.update_state(terms["dfl"])
        total = terms["loss"]
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, total.dtype) for v in self.losses]))
        return scale_loss_for_distribution(total)


# === Building blocks ===
def _make_divisible(value: float, divisor: int = 8) -> int:
    return max(divisor, int(math.ceil(value / divisor) * divisor))


def _conv(x, filters, kernel, name, strides=1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.Activation("silu", name=f"{name}_silu")(x)


def _dw_conv(x, kernel, name):
    x = keras.layers.DepthwiseConv2D(kernel, padding="same", use_bias=False,
                                     name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=f"{name}_dwbn")(x)
    return keras.layers.Activation("silu", name=f"{name}_dwsilu")(x)


def _c2f(x, filters, n, name, shortcut=False):
    hidden = filters // 2
    parts = [_conv(x, hidden, 1, f"{name}_cv1a"), _conv(x, hidden, 1, f"{name}_cv1b")]
    for i in range(n):
        y = _conv(parts[-1], hidden, 3, f"{name}_m{i}_cv1")
        y = _conv(y, hidden, 3, f"{name}_m{i}_cv2")
        if shortcut:
            y = keras.layers.Add(name=f"{name}_m{i}_add")([parts[-1], y])
        parts.append(y)
    x = keras.layers.Concatenate(name=f"{name}_concat")(parts)
    return _conv(x, filters, 1, f"{name}_cv2")


def _sppf(x, filters, name, pool=5):
    hidden = filters // 2
    y = [_conv(x, hidden, 1, f"{name}_cv1")]
    for i in range(3):
        y.append(keras.layers.MaxPooling2D(pool, strides=1, padding="same",
                                           name=f"{name}_pool{i + 1}")(y[-1]))
    x = keras.layers.Concatenate(name=f"{name}_concat")(y)
    return _conv(x, filters, 1, f"{name}_cv2")


def _check_input(backbone):
    shape = tuple(backbone.spec.input_shape)
    if len(shape) != 3 or any(v is None for v in shape[:2]):
        raise UsageError(f"the detector needs a backbone built for a fixed (H, W, 3) input. "
                         f"Received: input_shape={shape}")
    if shape[0] % STRIDES[-1] or shape[1] % STRIDES[-1]:
        raise UsageError(f"the detector's input height and width must be multiples of "
                         f"{STRIDES[-1]} (letterbox to such a size). Received: "
                         f"input_shape={shape}")
    by_name = {lv.name: lv for lv in backbone.spec.levels}
    for name, stride in zip(LEVELS, STRIDES):
        if name not in by_name or by_name[name].stride != stride:
            raise UsageError(f"the detector needs the backbone levels P3, P4, P5 (strides "
                             f"8, 16, 32). Received: backbone {backbone.spec.name!r} with "
                             f"levels {[(lv.name, lv.stride) for lv in backbone.spec.levels]}")
    return shape


def build_detector(backbone, num_classes: int, size: str = "n", *, width: float | None = None,
                   depth: float | None = None, max_channels: int | None = None,
                   reg_max: int = 16, separable_cls: bool = False,
                   name: str | None = None) -> Detector:
    """Build the YOLOv8-style detector on a registry backbone.

    Args:
        backbone: a built :class:`~visionsuite.backbones.registry.Backbone` with levels P3,
            P4 and P5 and an input ``(H, W, 3)``, ``H`` and ``W`` multiples of 32.
        num_classes: number of object classes (>= 1).
        size: ``"n"``, ``"s"``, ``"m"``, ``"l"`` or ``"x"`` (see :data:`SIZES`).
        width: override of the size's width multiple of the neck and head channels.
        depth: override of the size's depth multiple (bottlenecks per C2f block).
        max_channels: override of the size's channel cap (before the width multiple).
        reg_max: bins of each side's distance distribution (DFL).
        separable_cls: build the classification branch of the head from depthwise 3x3 +
            pointwise 1x1 convolutions (as YOLO11 does) instead of two full 3x3
            convolutions: at 640 px with 80 classes this removes 1.7 of the ``n`` model's
            9.4 GFLOPs, but LiteRT on CPU runs it slower (see the module docstring).
        name: model name.

    Returns:
        A :class:`Detector` with input ``"image"`` (RGB pixels in [0, 255]) and the outputs
        ``"boxes"``, ``"scores"``, ``"raw"``.

    Example:
        >>> bb = build_backbone("mobilenet_v3_large", (384, 640, 3), weights="imagenet")
        >>> model = build_detector(bb, num_classes=80, size="n")
    """
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) \
            or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer. Received: "
                         f"num_classes={num_classes!r}")
    if not isinstance(separable_cls, bool):
        raise UsageError(f"separable_cls must be true or false. Received: "
                         f"separable_cls={separable_cls!r}")
    if not isinstance(reg_max, (int, np.integer)) or reg_max < 2:
        raise UsageError(f"reg_max must be an integer >= 2. Received: reg_max={reg_max!r}")
    multiples = detector_size(size)
    for key, value in (("width", width), ("depth", depth)):
        if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 4):
            raise UsageError(f"{key} must be a multiple in (0, 4]. Received: {key}={value!r}")
    if max_channels is not None and int(max_channels) < 8:
        raise UsageError(f"max_channels must be >= 8. Received: max_channels={max_channels!r}")
    width = float(width if width is not None else multiples["width"])
    depth = float(depth if depth is not None else multiples["depth"])
    max_channels = int(max_channels if max_channels is not None else multiples["max_channels"])
    num_classes, reg_max = int(num_classes), int(reg_max)
    height, wide = _check_input(backbone)[:2]

    def ch(c):
        return _make_divisible(min(c, max_channels) * width, 8)

    n = max(round(NECK_DEPTH * depth), 1)
    c3, c4, c5 = (ch(c) for c in NECK_CHANNELS)

    # === Backbone ===
    inputs = keras.Input((height, wide, 3), name="image")
    features = backbone.model(inputs)
    p3, p4, p5 = (features[k] for k in LEVELS)

    # === Neck (PAN/FPN) ===
    p5 = _sppf(p5, c5, "neck_sppf")
    x = keras.layers.UpSampling2D(2, name="neck_up4")(p5)
    x = keras.layers.Concatenate(name="neck_cat4")([x, p4])
    n4 = _c2f(x, c4, n, "neck_td4")
    x = keras.layers.UpSampling2D(2, name="neck_up3")(n4)
    x = keras.layers.Concatenate(name="neck_cat3")([x, p3])
    out3 = _c2f(x, c3, n, "neck_out3")
    x = _conv(out3, c3, 3, "neck_down4", strides=2)
    x = keras.layers.Concatenate(name="neck_cat_bu4")([x, n4])
    out4 = _c2f(x, c4, n, "neck_out4")
    x = _conv(out4, c4, 3, "neck_down5", strides=2)
    x = keras.layers.Concatenate(name="neck_cat_bu5")([x, p5])
    out5 = _c2f(x, c5, n, "neck_out5")

    # === Decoupled head ===
    box_ch = max(16, c3 // 4, 4 * reg_max)
    cls_ch = max(c3, min(num_classes, 100))
    box_maps, cls_maps = [], []
    for level, stride, feat in zip(LEVELS, STRIDES, (out3, out4, out5)):
        tag = f"head_{level.lower()}"
        b = _conv(feat, box_ch, 3, f"{tag}_box1")
        b = _conv(b, box_ch, 3, f"{tag}_box2")
        b = keras.layers.Conv2D(4 * reg_max, 1, name=f"{tag}_box_pred",
                                bias_initializer=keras.initializers.Constant(1.0))(b)
        cells = (height // stride) * (wide // stride)
        prior = math.log(5.0 / num_classes / cells)  # ~5 objects per image at the start
        if separable_cls:
            c = _conv(_dw_conv(feat, 3, f"{tag}_cls1"), cls_ch, 1, f"{tag}_cls1")
            c = _conv(_dw_conv(c, 3, f"{tag}_cls2"), cls_ch, 1, f"{tag}_cls2")
        else:
            c = _conv(feat, cls_ch, 3, f"{tag}_cls1")
            c = _conv(c, cls_ch, 3, f"{tag}_cls2")
        c = keras.layers.Conv2D(num_classes, 1, name=f"{tag}_cls_pred",
                                bias_initializer=keras.initializers.Constant(prior))(c)
        box_maps.append(keras.layers.Reshape((cells, 4 * reg_max), name=f"{tag}_box_flat")(b))
        cls_maps.append(keras.layers.Reshape((cells, num_classes), name=f"{tag}_cls_flat")(c))

    # === Outputs (float32) ===
    box_logits = keras.layers.Concatenate(axis=1, dtype="float32", name="box_logits")(box_maps)
    cls_logits = keras.layers.Concatenate(axis=1, dtype="float32", name="class_logits")(cls_maps)
    boxes = DistanceDecode((height, wide), STRIDES, reg_max, name="boxes")(box_logits)
    scores = keras.layers.Activation("sigmoid", dtype="float32", name="scores")(cls_logits)
    raw = keras.layers.Concatenate(axis=-1, dtype="float32", name="raw")([box_logits, cls_logits])
    return Detector(inputs, {"boxes": boxes, "scores": scores, "raw": raw},
                    name=name or f"{backbone.spec.name}_yolo_{size}")


def inference_model(detector) -> keras.Model:
    """The detector without its training output: ``{"boxes", "scores"}``, same layers and
    weights (a view, not a copy). Use it for export and benchmarks."""
    if "boxes" not in [layer.name for layer in detector.layers]:
        raise UsageError(f"not a detector built by build_detector (no 'boxes' layer). "
                         f"Received: model={detector.name!r}")
    return keras.Model(detector.input, {"boxes": detector.get_layer("boxes").output,
                                         "scores": detector.get_layer("scores").output},
                       name=f"{detector.name}_inference")
