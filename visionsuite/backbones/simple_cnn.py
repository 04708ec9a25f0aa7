"""``simple_cnn``: the classic conv -> activation -> pool stack, generalised.

Each stage is ``depth`` convolutions (optionally batch-normalised) followed by an activation,
then a downsampling step (max/avg pool, or the last conv's stride when ``pool="none"``).
Stages whose cumulative stride is 4, 8, 16 or 32 are exposed as P2..P5.
"""

from __future__ import annotations

import keras

from visionsuite.backbones.layers import PixelNormalization
from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.errors import UsageError

ACTIVATIONS = ("relu", "leaky_relu", "elu", "relu6")
PREPROCESSING = Preprocessing(scale=1.0 / 255.0)


def _as_tuple(value, n, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise UsageError(f"simple_cnn: {name} needs one value per stage ({n}). "
                             f"Received: {name}={value!r}")
        return tuple(value)
    return (value,) * n


def _check(widths, depth, kernel_sizes, strides, padding, activation, pool, dropout):
    if not widths or any(int(w) < 1 for w in widths):
        raise UsageError(f"simple_cnn: widths must be positive channel counts. Received: widths={widths!r}")
    if int(depth) < 1:
        raise UsageError(f"simple_cnn: depth must be >= 1. Received: depth={depth!r}")
    n = len(widths)
    kernel_sizes = _as_tuple(kernel_sizes, n, "kernel_sizes")
    strides = _as_tuple(strides, n, "strides")
    if any(s not in (1, 2) for s in strides):
        raise UsageError(f"simple_cnn: strides are per-stage downsampling factors 1 or 2. "
                         f"Received: strides={strides!r}")
    if padding not in ("same", "valid"):
        raise UsageError(f"simple_cnn: padding must be 'same' or 'valid'. Received: padding={padding!r}")
    if activation not in ACTIVATIONS:
        raise UsageError(f"simple_cnn: activation must be one of {ACTIVATIONS}. "
                         f"Received: activation={activation!r}")
    if pool not in ("max", "avg", "none"):
        raise UsageError(f"simple_cnn: pool must be 'max', 'avg' or 'none'. Received: pool={pool!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise UsageError(f"simple_cnn: dropout must be in [0, 1). Received: dropout={dropout!r}")
    return kernel_sizes, strides


def _activation(name):
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.1)
    if name == "relu6":
        return keras.layers.ReLU(max_value=6.0)
    return keras.layers.Activation(name)


def levels(widths=(32, 64, 128, 256, 256), strides=2, **_):
    _, strides = _check(widths, 1, 3, strides, "same", "relu", "max", 0.0)
    out, total = [], 1
    for width, s in zip(widths, strides):
        total *= s
        if total in (4, 8, 16, 32):
            out.append(FeatureLevel(f"P{total.bit_length() - 1}", total, int(width)))
    # Only the deepest stage of each stride is a level.
    by_name = {lv.name: lv for lv in out}
    return tuple(by_name[k] for k in sorted(by_name))


def build(input_shape, weights=None, *, widths=(32, 64, 128, 256, 256), depth=2,
          kernel_sizes=3, strides=2, padding="same", activation="relu", batch_norm=True,
          dropout=0.0, pool="max", initializer="he_normal"):
    kernel_sizes, strides = _check(widths, depth, kernel_sizes, strides, padding, activation,
                                   pool, dropout)
    inputs = keras.Input(input_shape, name="image")
    x = PixelNormalization.from_spec(PREPROCESSING, name="pixel_normalization")(inputs)
    features, total = {}, 1
    for i, (width, k, s) in enumerate(zip(widths, kernel_sizes, strides)):
        for j in range(int(depth)):
            conv_stride = s if (pool == "none" and j == int(depth) - 1) else 1
            x = keras.layers.Conv2D(int(width), k, strides=conv_stride, padding=padding,
                                    use_bias=not batch_norm, kernel_initializer=initializer,
                                    name=f"stage{i + 1}_conv{j + 1}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"stage{i + 1}_bn{j + 1}")(x)
            x = _activation(activation)(x)
        if s == 2 and pool != "none":
            pool_cls = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
            x = pool_cls(2, padding="same", name=f"stage{i + 1}_pool")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"stage{i + 1}_dropout")(x)
        total *= s
        if total in (4, 8, 16, 32):
            features[f"P{total.bit_length() - 1}"] = x
    if not features:
        raise UsageError(f"simple_cnn: the stack never reaches stride 4; add stages or strides. "
                         f"Received: widths={widths!r}, strides={strides!r}")
    model = keras.Model(inputs, features, name="simple_cnn")
    if weights is not None:
        model.load_weights(weights)
    return model


SIMPLE_CNN = BackboneEntry(
    name="simple_cnn",
    build=build,
    levels=levels,
    preprocessing=PREPROCESSING,
    arch_defaults=dict(widths=(32, 64, 128, 256, 256), depth=2, kernel_sizes=3, strides=2,
                       padding="same", activation="relu", batch_norm=True, dropout=0.0,
                       pool="max", initializer="he_normal"),
    pretrained=(),
    default_input_size=224,
    description="conv-activation-pool stack: depth, widths, kernels, strides, activation, BN, dropout",
)
