"""``mobilenet_v3_small`` and ``mobilenet_v3_large`` from keras.applications.

Keeps keras' built-in preprocessing (``Rescaling(1/127.5, offset=-1)``: RGB 0..255 -> -1..1).
P2..P4 tap the last block of each stride; P5 is the network's final 1x1 convolution (576 /
960 channels at ``alpha=1``), so every ImageNet weight is used.

Architecture keywords:
    alpha: width multiplier (ImageNet weights exist for 0.75 and 1.0; minimalistic: 1.0).
    minimalistic: the variant without squeeze-excite, hard-swish and 5x5 kernels.
"""

from __future__ import annotations

import functools

from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.backbones.weights import KerasWeights, weights_source
from visionsuite.errors import UsageError

PREPROCESSING = Preprocessing(scale=1.0 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0))

# variant -> ((level, layer or None, base channels), ...); channels scale with alpha.
TAPS = {
    "small": (("P2", "expanded_conv_project_bn", 16), ("P3", "expanded_conv_2_add", 24),
              ("P4", "expanded_conv_7_add", 48), ("P5", None, 96)),
    "large": (("P2", "expanded_conv_2_add", 24), ("P3", "expanded_conv_5_add", 40),
              ("P4", "expanded_conv_11_add", 112), ("P5", None, 160)),
}
STRIDES = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}


def _round_channels(value, divisor=8):
    """MobileNet channel rounding: nearest multiple of 8, never 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check(alpha, minimalistic, weights=None):
    if not isinstance(alpha, (int, float)) or not 0.0 < float(alpha) <= 2.0:
        raise UsageError(f"mobilenet_v3: alpha must be a width multiplier in (0, 2]. "
                         f"Received: alpha={alpha!r}")
    if not isinstance(minimalistic, bool):
        raise UsageError(f"mobilenet_v3: minimalistic must be true or false. "
                         f"Received: minimalistic={minimalistic!r}")
    allowed = (1.0,) if minimalistic else (0.75, 1.0)
    if weights == "imagenet" and float(alpha) not in allowed:
        raise UsageError(f"mobilenet_v3: ImageNet weights exist for alpha in {allowed} "
                         f"(minimalistic={minimalistic}). Received: alpha={alpha!r}")


def levels(variant, alpha=1.0, minimalistic=False):
    _check(alpha, minimalistic)
    out = []
    for level, layer, channels in TAPS[variant]:
        ch = _round_channels(channels * float(alpha))
        if layer is None:  # the final 1x1 conv: 6x the last block's channels
            ch = _round_channels(ch * 6)
        out.append(FeatureLevel(level, STRIDES[level], ch))
    return tuple(out)


def imagenet_weights(variant, alpha=1.0, minimalistic=False, include_top=False):
    """The keras.applications weights file for this configuration."""
    from keras.src.applications import mobilenet_v3

    model_name = f"{variant}{'_minimalistic' if minimalistic else ''}_224_{float(alpha)}_float"
    hashes = mobilenet_v3.WEIGHTS_HASHES.get(model_name, (None, None))
    fname = (f"weights_mobilenet_v3_{model_name}.h5" if include_top
             else f"weights_mobilenet_v3_{model_name}_no_top_v2.h5")
    return KerasWeights(fname, mobilenet_v3.BASE_WEIGHT_PATH + fname,
                        hashes[0 if include_top else 1])


def build(variant, input_shape, weights=None, *, alpha=1.0, minimalistic=False):
    import keras

    from visionsuite.backbones.applications import build_application

    _check(alpha, minimalistic, weights)
    constructor = {"small": keras.applications.MobileNetV3Small,
                   "large": keras.applications.MobileNetV3Large}[variant]
    return build_application(
        constructor, input_shape, weights, name=f"mobilenet_v3_{variant}",
        taps={level: layer for level, layer, _ in TAPS[variant]},
        imagenet_weights=imagenet_weights(variant, alpha, minimalistic),
        alpha=float(alpha), minimalistic=minimalistic, include_preprocessing=True)


def _entry(variant):
    return BackboneEntry(
        name=f"mobilenet_v3_{variant}",
        build=functools.partial(build, variant),
        levels=functools.partial(levels, variant),
        preprocessing=PREPROCESSING,
        arch_defaults=dict(alpha=1.0, minimalistic=False),
        pretrained=("imagenet",),
        weights_source=lambda weights: weights_source(imagenet_weights(variant)),
        default_input_size=224,
        description=f"MobileNetV3-{variant.capitalize()} (keras.applications)",
    )


MOBILENET_V3_SMALL = _entry("small")
MOBILENET_V3_LARGE = _entry("large")
BACKBONES = (MOBILENET_V3_SMALL, MOBILENET_V3_LARGE)
