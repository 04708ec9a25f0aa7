"""Segmentation heads on the feature levels of any registry backbone.

Every builder takes a :class:`~visionsuite.backbones.registry.Backbone` (a model returning a
dict of feature maps ``P2..P5`` plus its spec) and returns a ``keras.Model`` mapping RGB pixels
in ``[0, 255]`` (input ``"image"``) to per-pixel class probabilities at the input resolution
(output ``"probabilities"``, softmax, float32 even under mixed precision).

* :func:`deeplabv3_plus` -- ASPP (atrous spatial pyramid pooling, separable convolutions) on
  the deepest level, decoder with the low-level ``P2`` skip (Chen et al., 2018);
* :func:`lraspp` -- Lite R-ASPP, the light MobileNetV3 segmentation head (Howard et al., 2019):
  a 1x1 branch gated by a global-pooling attention branch, plus a ``P3`` skip;
* :func:`unet` -- a U-Net / FPN-style top-down decoder over every level.

Output stride: the registry's backbones are not dilated, so the deepest level sits at stride
32. ``output_stride=16`` (or 8) upsamples the deepest features to the level of that stride
and concatenates them with it, so the ASPP / LR-ASPP context is computed at that resolution.

keras-hub's ``DeepLabV3ImageSegmenter`` was not used: it takes keras-hub backbones with their
own preprocessors and needs a dilated encoder, not the registry's dict-of-levels contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from visionsuite.errors import UsageError

PACKAGE = "visionsuite_segmentation"
HEADS = ("deeplabv3_plus", "lraspp", "unet")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeTo(keras.layers.Layer):
    """Resize feature maps to a fixed spatial size (bilinear by default).

    Args:
        height: output height in pixels.
        width: output width in pixels.
        interpolation: ``"bilinear"`` or ``"nearest"``.

    Example:
        >>> up = ResizeTo(96, 96)(logits)
    """

    def __init__(self, height, width, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)
        self.interpolation = interpolation

    def call(self, x):
        y = ops.image.resize(x, (self.height, self.width), interpolation=self.interpolation)
        return ops.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, interpolation=self.interpolation)
        return config


def _hw(x) -> tuple[int, int]:
    return int(x.shape[1]), int(x.shape[2])


def _resize_like(x, ref, name):
    if _hw(x) == _hw(ref):
        return x
    return ResizeTo(*_hw(ref), name=name)(x)


def _conv_bn_relu(x, filters, kernel, name, *, rate=1, separable=False):
    if separable and kernel > 1:
        x = keras.layers.SeparableConv2D(filters, kernel, padding="same", dilation_rate=rate,
                                         use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate,
                                use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _levels(backbone):
    levels = sorted(backbone.spec.levels, key=lambda lv: lv.stride)
    if not levels:
        raise UsageError(f"backbone {backbone.spec.name!r} has no feature levels")
    return levels


def _pick(levels, preferred: str):
    """The level named ``preferred``, else the shallowest one."""
    for lv in levels:
        if lv.name == preferred:
            return lv
    return levels[0]


def _context_features(features, levels, output_stride: int, name: str):
    """The deepest features at ``output_stride``: the deepest level itself, or the deepest
    level upsampled and concatenated with the level of that stride."""
    deepest = levels[-1]
    if output_stride >= deepest.stride:
        return features[deepest.name], deepest.stride
    target = [lv for lv in levels if lv.stride == output_stride]
    if not target:
        raise UsageError(f"output_stride must be one of the backbone's level strides "
                         f"{[lv.stride for lv in levels]}. Received: output_stride={output_stride}")
    ref = features[target[0].name]
    up = _resize_like(features[deepest.name], ref, f"{name}_deep_up")
    return keras.layers.Concatenate(name=f"{name}_fuse")([up, ref]), output_stride


def _classifier(x, inputs, num_classes, dropout, name="classifier"):
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name=name)(x)
    x = _resize_like(x, inputs, "logits_up")
    return keras.layers.Softmax(axis=-1, dtype="float32", name="probabilities")(x)


def _start(backbone):
    shape = tuple(backbone.spec.input_shape)
    inputs = keras.Input(shape, name="image")
    features = backbone.model(inputs)
    return inputs, features, _levels(backbone)


def deeplabv3_plus(backbone, num_classes: int, *, channels: int = 256, output_stride: int = 16,
                   atrous_rates: Sequence[int] = (6, 12, 18), low_level_channels: int = 48,
                   dropout: float = 0.1, name: str | None = None):
    """DeepLabV3+ on a registry backbone.

    Args:
        backbone: a built :class:`~visionsuite.backbones.registry.Backbone`.
        num_classes: output channels.
        channels: width of the ASPP and decoder convolutions.
        output_stride: stride at which ASPP runs (32, 16 or 8; see the module docstring).
        atrous_rates: dilation rates of the three ASPP branches at output stride 16; they are
            scaled by ``16 / output_stride``.
        low_level_channels: width of the projected ``P2`` skip.
        dropout: dropout before the classifier.
        name: model name.

    Example:
        >>> bb = build_backbone("mobilenet_v3_large", (128, 128, 3))
        >>> model = deeplabv3_plus(bb, num_classes=4)
    """
    inputs, features, levels = _start(backbone)
    x, stride = _context_features(features, levels, int(output_stride), "aspp")
    scale = 16.0 / stride
    # === ASPP ===
    branches = [_conv_bn_relu(x, channels, 1, "aspp_1x1")]
    for k, rate in enumerate(atrous_rates):
        r = max(1, int(round(rate * scale)))
        branches.append(_conv_bn_relu(x, channels, 3, f"aspp_r{k + 1}", rate=r, separable=True))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = _conv_bn_relu(pooled, channels, 1, "aspp_pool_proj")
    branches.append(ResizeTo(*_hw(x), name="aspp_pool_up")(pooled))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, channels, 1, "aspp_proj")
    if dropout:
        x = keras.layers.Dropout(dropout, name="aspp_dropout")(x)
    # === Decoder ===
    low = features[_pick(levels, "P2").name]
    low = _conv_bn_relu(low, low_level_channels, 1, "decoder_low")
    x = _resize_like(x, low, "decoder_up")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn_relu(x, channels, 3, "decoder_conv1", separable=True)
    x = _conv_bn_relu(x, channels, 3, "decoder_conv2", separable=True)
    outputs = _classifier(x, inputs, num_classes, 0.0)
    return keras.Model(inputs, outputs, name=name or f"{backbone.spec.name}_deeplabv3_plus")


def lraspp(backbone, num_classes: int, *, channels: int = 128, output_stride: int = 16,
           dropout: float = 0.0, name: str | None = None):
    """Lite R-ASPP (the MobileNetV3 segmentation head) on a registry backbone.

    Args:
        backbone: a built :class:`~visionsuite.backbones.registry.Backbone`.
        num_classes: output channels.
        channels: width of the 1x1 and attention branches (128 in the paper).
        output_stride: stride of the high-level features (32, 16 or 8).
        dropout: dropout before the classifier.
        name: model name.

    Example:
        >>> model = lraspp(build_backbone("mobilenet_v3_large", (128, 128, 3)), num_classes=4)
    """
    inputs, features, levels = _start(backbone)
    high, _ = _context_features(features, levels, int(output_stride), "lraspp")
    # === Head ===
    x = _conv_bn_relu(high, channels, 1, "lraspp_conv")
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
    gate = keras.layers.Conv2D(channels, 1, name="lraspp_gate_conv")(gate)
    gate = keras.layers.Activation("sigmoid", name="lraspp_gate")(gate)
    x = keras.layers.Multiply(name="lraspp_attention")([x, gate])
    low = features[_pick(levels, "P3").name]
    x = _resize_like(x, low, "lraspp_up")
    if dropout:
        x = keras.layers.Dropout(dropout, name="lraspp_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="lraspp_high_classifier")(x)
    skip = keras.layers.Conv2D(num_classes, 1, name="lraspp_low_classifier")(low)
    x = keras.layers.Add(name="lraspp_sum")([x, skip])
    x = _resize_like(x, inputs, "logits_up")
    outputs = keras.layers.Softmax(axis=-1, dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name or f"{backbone.spec.name}_lraspp")


def unet(backbone, num_classes: int, *, channels: int = 128, dropout: float = 0.0,
         name: str | None = None):
    """A U-Net / FPN-style decoder: from the deepest level up, upsample, concatenate the
    next shallower level and apply two 3x3 convolutions; classify at the shallowest level.

    Args:
        backbone: a built :class:`~visionsuite.backbones.registry.Backbone`.
        num_classes: output channels.
        channels: width of the decoder convolutions at stride 16; halved at each finer
            level (at least 16).
        dropout: dropout before the classifier.
        name: model name.

    Example:
        >>> model = unet(build_backbone("simple_cnn", (64, 64, 3)), num_classes=3)
    """
    inputs, features, levels = _start(backbone)
    x = features[levels[-1].name]
    for lv in reversed(levels[:-1]):
        width = max(16, int(channels * lv.stride / 16))
        skip = features[lv.name]
        x = _resize_like(x, skip, f"decoder_{lv.name}_up")
        x = keras.layers.Concatenate(name=f"decoder_{lv.name}_concat")([x, skip])
        x = _conv_bn_relu(x, width, 3, f"decoder_{lv.name}_conv1")
        x = _conv_bn_relu(x, width, 3, f"decoder_{lv.name}_conv2")
    outputs = _classifier(x, inputs, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name or f"{backbone.spec.name}_unet")


def set_bn_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer in ``model``
    (nested models included); returns how many were changed. Saved with the model."""
    count = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            count += 1
        stack.extend(getattr(layer, "layers", []))
    return count


def build_head(head: str, backbone, num_classes: int, *, channels: int, output_stride: int,
               dropout: float):
    """Build the named head (one of :data:`HEADS`)."""
    if head == "deeplabv3_plus":
        return deeplabv3_plus(backbone, num_classes, channels=channels,
                              output_stride=output_stride, dropout=dropout)
    if head == "lraspp":
        return lraspp(backbone, num_classes, channels=channels, output_stride=output_stride,
                      dropout=dropout)
    if head == "unet":
        return unet(backbone, num_classes, channels=channels, dropout=dropout)
    raise UsageError(f"unknown segmentation head. Choose from: {', '.join(HEADS)}. "
                     f"Received: head={head!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassIds(keras.layers.Layer):
    """The argmax over the last axis as uint8 class ids ``(N, H, W)`` (at most 256 classes).

    Example:
        >>> labels = ClassIds(name="labels")(logits)
    """

    def call(self, x):
        if keras.backend.backend() == "tensorflow":  # keras' argmax adds ops TFLite lacks
            import tensorflow as tf

            return tf.cast(tf.argmax(x, axis=-1, output_type=tf.int32), tf.uint8)
        return ops.cast(ops.argmax(x, axis=-1), "uint8")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


def stream_model(model):
    """The stream (inference) variant of a segmentation model built here: the same weights,
    with the work that a video stream needs done inside the graph at the head's native
    resolution, before any upsampling.

    Outputs ``{"labels": uint8 class ids (N, h, w), "scores": float32 class probabilities
    (N, h, w, C)}`` where ``(h, w)`` is the resolution of the logits before the final
    ``logits_up`` resize (1/8 of the input for LR-ASPP, 1/4 for DeepLabV3+ and U-Net). The
    task's ``postprocess`` resizes the uint8 labels once to the frame (or, with temporal
    smoothing, averages the small ``scores`` and resizes their argmax; a two-class model's
    class-1 margin is resized as one float channel). The full-resolution ``probabilities``
    stay in the original model, which evaluation and ``export`` use.

    Args:
        model: a model from :func:`build_head` (a layer ``logits_up`` resizing the logits and
            a ``probabilities`` softmax), or one whose logits are already at the input size.

    Returns:
        A new ``keras.Model`` sharing the layers (and weights) of ``model``.

    Example:
        >>> fast = stream_model(keras.models.load_model("best.keras"))
    """
    try:
        logits = model.get_layer("logits_up").input
    except ValueError:  # no upsampling: the softmax's input is already at full resolution
        logits = model.get_layer("probabilities").input
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    labels = ClassIds(name="labels")(logits)
    scores = keras.layers.Softmax(axis=-1, dtype="float32", name="scores")(logits)
    return keras.Model(model.inputs, {"labels": labels, "scores": scores},
                       name=f"{model.name}_stream")


STREAM_OUTPUTS = ("labels", "scores")
