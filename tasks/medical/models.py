"""A 3D U-Net in Keras 3 (residual encoder, instance or batch norm, optional deep supervision)
and a Dice + cross-entropy loss for 3D (and 2D) segmentation.

The encoder is declared like the project's 2D backbones: :func:`unet3d_levels` returns its
levels statically -- ``(name, stride (d, h, w), channels)`` -- and :func:`build_encoder3d`
returns a Keras model whose outputs are exactly those levels (``{"L0": ..., "L1": ...}``),
so a test can check the built model against the declaration. Strides are per axis, so
anisotropic volumes (thick slices) can skip downsampling along ``D`` at the first levels:
``strides=((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2))``.

Input ``(D, H, W, C)`` float32, already normalised (HU window, z-score or percentile scaling;
see :mod:`~visionsuite_tasks.medical.preprocess`): unlike the RGB backbones there is no
pixel-normalisation layer. Spatial sides must be multiples of the total stride
(:func:`unet3d_divisor`; ``None`` sides are allowed for sliding-window inference).

Output: ``{"probabilities": softmax (D, H, W, num_classes)}``; with
``deep_supervision=True`` also ``"aux_1"``, ``"aux_2"``, ... (softmax heads on the coarser
decoder levels, upsampled to full size) for training; :func:`inference_model` keeps only
``"probabilities"`` for export and inference.
"""

from __future__ import annotations

import dataclasses
import keras
from keras import layers, ops

from visionsuite.errors import UsageError

PACKAGE = "visionsuite_medical"
NORMS = ("instance", "batch", "none")
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class Level3D:
    """One encoder feature map: its key, per-axis stride (d, h, w) and channel count."""

    name: str
    stride: tuple[int, int, int]
    channels: int


def _check(widths, strides, blocks, norm):
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1:
        raise UsageError(f"unet3d: widths must be positive channel counts. Received: "
                         f"widths={widths!r}")
    if strides is None:
        strides = ((1, 1, 1),) + ((2, 2, 2),) * (len(widths) - 1)
    strides = tuple(tuple(int(s) for s in ((st,) * 3 if isinstance(st, int) else st))
                    for st in strides)
    if len(strides) != len(widths) or any(len(s) != 3 or min(s) < 1 or max(s) > 2
                                          for s in strides):
        raise UsageError(f"unet3d: strides needs one (d, h, w) of 1s and 2s per level "
                         f"({len(widths)}). Received: strides={strides!r}")
    blocks = (int(blocks),) * len(widths) if isinstance(blocks, int) else tuple(
        int(b) for b in blocks)
    if len(blocks) != len(widths) or min(blocks) < 1:
        raise UsageError(f"unet3d: blocks needs one count >= 1 per level. "
                         f"Received: blocks={blocks!r}")
    if norm not in NORMS:
        raise UsageError(f"unet3d: norm must be one of {NORMS}. Received: norm={norm!r}")
    return widths, strides, blocks


def unet3d_levels(widths=(16, 32, 64, 128), strides=None, **_) -> tuple[Level3D, ...]:
    """The encoder's levels, declared without building anything."""
    widths, strides, _ = _check(widths, strides, 1, "instance")
    out, total = [], (1, 1, 1)
    for i, (w, s) in enumerate(zip(widths, strides)):
        total = tuple(a * b for a, b in zip(total, s))
        out.append(Level3D(f"L{i}", total, w))
    return tuple(out)


def unet3d_divisor(widths=(16, 32, 64, 128), strides=None, **_) -> tuple[int, int, int]:
    """Each spatial side must be a multiple of this (the deepest level's stride)."""
    return unet3d_levels(widths, strides)[-1].stride


def _norm(kind, name):
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    if kind == "batch":
        return layers.BatchNormalization(name=name)
    return layers.Identity(name=name)


def _residual_block(x, width, stride, norm, name):
    shortcut = x
    y = layers.Conv3D(width, 3, strides=stride, padding="same", use_bias=norm == "none",
                      kernel_initializer="he_normal", name=f"{name}_conv1")(x)
    y = _norm(norm, f"{name}_norm1")(y)
    y = layers.LeakyReLU(0.01, name=f"{name}_act1")(y)
    y = layers.Conv3D(width, 3, padding="same", use_bias=norm == "none",
                      kernel_initializer="he_normal", name=f"{name}_conv2")(y)
    y = _norm(norm, f"{name}_norm2")(y)
    if tuple(stride) != (1, 1, 1) or x.shape[-1] != width:
        shortcut = layers.Conv3D(width, 1, strides=stride, use_bias=norm == "none",
                                 name=f"{name}_proj")(x)
        shortcut = _norm(norm, f"{name}_proj_norm")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.LeakyReLU(0.01, name=f"{name}_out")(y)


def build_encoder3d(input_shape=(None, None, None, 1), weights=None, *,
                    widths=(16, 32, 64, 128), strides=None, blocks=(1, 2, 2, 2),
                    norm="instance"):
    """The residual encoder alone: a model with outputs ``{"L0": ..., "L1": ...}``.

    Same signature shape as a registry backbone's ``build(input_shape, weights, **arch)``;
    ``weights`` is None or a ``.weights.h5`` file."""
    widths, strides, blocks = _check(widths, strides, blocks, norm)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.Conv3D(widths[0], 3, padding="same", use_bias=norm == "none",
                      kernel_initializer="he_normal", name="stem_conv")(inputs)
    x = _norm(norm, "stem_norm")(x)
    x = layers.LeakyReLU(0.01, name="stem_act")(x)
    features = {}
    for i, (w, s, n) in enumerate(zip(widths, strides, blocks)):
        for b in range(n):
            x = _residual_block(x, w, s if b == 0 else (1, 1, 1), norm, f"enc{i}_block{b}")
        features[f"L{i}"] = x
    model = keras.Model(inputs, features, name="resunet3d_encoder")
    if weights is not None:
        model.load_weights(weights)
    return model


def build_unet3d(input_shape=(None, None, None, 1), num_classes: int = 2, *,
                 widths=(16, 32, 64, 128), strides=None, blocks=(1, 2, 2, 2),
                 norm: str = "instance", deep_supervision: bool = False, dropout: float = 0.0):
    """A 3D U-Net with a residual encoder.

    Args:
        input_shape: ``(D, H, W, C)``; ``None`` sides allowed (multiples of
            :func:`unet3d_divisor` at run time).
        num_classes: softmax channels (background included); >= 2.
        widths: channels per level.
        strides: per level, the (d, h, w) downsampling of its first block (1 or 2 each);
            default ``(1,1,1)`` then ``(2,2,2)``.
        blocks: residual blocks per encoder level.
        norm: "instance" (GroupNormalization with one group per channel), "batch" or "none".
        deep_supervision: add auxiliary softmax outputs ``aux_k`` from the coarser decoder
            levels (upsampled to full size).
        dropout: spatial dropout before the head.

    Example:
        >>> model = build_unet3d((32, 32, 32, 1), 2, widths=(4, 8, 16), blocks=1)
        >>> sorted(model.output)
        ['probabilities']
    """
    if int(num_classes) < 2:
        raise UsageError(f"unet3d: num_classes counts the background too (>= 2). "
                         f"Received: num_classes={num_classes}")
    encoder = build_encoder3d(input_shape, None, widths=widths, strides=strides,
                              blocks=blocks, norm=norm)
    levels = unet3d_levels(widths, strides)
    widths_t, strides_t, _ = _check(widths, strides, blocks, norm)
    feats = encoder.output
    x = feats[levels[-1].name]
    aux = []
    for i in range(len(levels) - 2, -1, -1):
        up = strides_t[i + 1]
        x = layers.Conv3DTranspose(widths_t[i], up, strides=up, use_bias=False,
                                   name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, feats[levels[i].name]])
        for j in (1, 2):
            x = layers.Conv3D(widths_t[i], 3, padding="same", use_bias=norm == "none",
                              kernel_initializer="he_normal", name=f"dec{i}_conv{j}")(x)
            x = _norm(norm, f"dec{i}_norm{j}")(x)
            x = layers.LeakyReLU(0.01, name=f"dec{i}_act{j}")(x)
        if deep_supervision and 0 < i:
            factor = levels[i].stride
            head = layers.Conv3D(int(num_classes), 1, name=f"aux_{i}_logits")(x)
            if factor != (1, 1, 1):
                head = layers.UpSampling3D(factor, name=f"aux_{i}_up")(head)
            aux.append((f"aux_{i}", layers.Softmax(name=f"aux_{i}", dtype="float32")(head)))
    if dropout:
        x = layers.SpatialDropout3D(float(dropout), name="head_dropout")(x)
    logits = layers.Conv3D(int(num_classes), 1, name="head_logits")(x)
    probs = layers.Softmax(name="probabilities", dtype="float32")(logits)
    outputs = {"probabilities": probs, **dict(aux)}
    return keras.Model(encoder.input, outputs, name="resunet3d")


def inference_model(model):
    """The same network with only its ``"probabilities"`` output (drops deep supervision)."""
    out = model.output["probabilities"] if isinstance(model.output, dict) else model.output
    return keras.Model(model.input, {"probabilities": out}, name=f"{model.name}_inference")


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiceCELoss(keras.losses.Loss):
    """``ce_weight * cross-entropy + dice_weight * (1 - soft Dice)`` on softmax probabilities.

    Works for any number of spatial axes (2D ``(B, H, W, C)`` and 3D ``(B, D, H, W, C)``).
    Targets are integer labels ``(B, ...spatial)`` (or with a trailing axis of 1); voxels equal
    to ``ignore_index`` count in neither term. The Dice is computed per class over the whole
    batch (``batch_dice=True``, stable for small lesions) or per sample, then averaged over
    classes (class 0 included only if ``include_background``).

    Args:
        ce_weight: factor of the cross-entropy.
        dice_weight: factor of the Dice term.
        smooth: Dice smoothing.
        include_background: count class 0 in the Dice.
        batch_dice: one Dice per class over the batch, or per sample then averaged.
        ignore_index: target value of voxels that do not count (None: none).

    Example:
        >>> loss = DiceCELoss()
    """

    def __init__(self, ce_weight=1.0, dice_weight=1.0, smooth=1e-5, include_background=False,
                 batch_dice=True, ignore_index=None, name="dice_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.smooth, self.include_background = float(smooth), bool(include_background)
        self.batch_dice = bool(batch_dice)
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def call(self, y_true, y_pred):
        probs = ops.cast(y_pred, "float32")
        n = probs.shape[-1]
        y = ops.cast(y_true, "int32")
        if len(y.shape) == len(probs.shape):
            y = ops.squeeze(y, axis=-1)
        if self.ignore_index is None:
            valid = ops.ones_like(y, dtype="float32")
        else:
            valid = ops.cast(ops.not_equal(y, self.ignore_index), "float32")
            y = ops.where(ops.equal(y, self.ignore_index), 0, y)
        onehot = ops.one_hot(y, n, dtype="float32")
        nll = -ops.sum(onehot * ops.log(ops.clip(probs, EPSILON, 1.0)), axis=-1)
        ce = ops.sum(nll * valid) / ops.maximum(ops.sum(valid), 1.0)
        v = valid[..., None]
        rank = len(probs.shape)
        axes = tuple(range(rank - 1)) if self.batch_dice else tuple(range(1, rank - 1))
        inter = ops.sum(probs * onehot * v, axis=axes)
        denom = ops.sum(probs * v, axis=axes) + ops.sum(onehot * v, axis=axes)
        dice = (2.0 * inter + self.smooth) / (denom + self.smooth)
        if not self.include_background:
            dice = dice[..., 1:]
        return self.ce_weight * ce + self.dice_weight * (1.0 - ops.mean(dice))

    def get_config(self):
        config = super().get_config()
        config.update(ce_weight=self.ce_weight, dice_weight=self.dice_weight, smooth=self.smooth,
                      include_background=self.include_background, batch_dice=self.batch_dice,
                      ignore_index=self.ignore_index)
        return config


def deep_supervision_losses(model, loss=None, decay: float = 0.5) -> tuple[dict, dict]:
    """``(losses, loss_weights)`` dicts for ``model.compile`` of a deep-supervised U-Net:
    the main output weighs 1, ``aux_k`` weighs ``decay ** k`` (coarser levels count less)."""
    loss = loss or DiceCELoss()
    names = list(model.output) if isinstance(model.output, dict) else ["probabilities"]
    weights = {n: 1.0 if n == "probabilities" else decay ** int(n.split("_")[1]) for n in names}
    return {n: loss for n in names}, weights
