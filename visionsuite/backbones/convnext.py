"""``convnext_tiny`` from keras.applications.

Keeps keras' built-in preprocessing (its ``PreStem``: RGB 0..255 normalised by the ImageNet mean
and std). The levels tap the last block of each of the four stages. Built with keras'
configurable ``ConvNeXt`` builder (``keras.src.applications``) to expose stochastic depth and
the layer-scale initial value, which the public ``ConvNeXtTiny()`` fixes.

Architecture keywords:
    drop_path_rate: stochastic-depth rate of the last block (linearly smaller before it).
    layer_scale_init_value: initial value of the per-channel residual scales.
"""

from __future__ import annotations

import functools

from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.backbones.weights import KerasWeights, weights_source
from visionsuite.errors import UsageError

PREPROCESSING = Preprocessing(scale=1.0 / 255.0, mean=(0.485, 0.456, 0.406),
                              std=(0.229, 0.224, 0.225))
DEPTHS = (3, 3, 9, 3)
PROJECTION_DIMS = (96, 192, 384, 768)
LEVELS = ("P2", "P3", "P4", "P5")


def _check(drop_path_rate, layer_scale_init_value):
    if not isinstance(drop_path_rate, (int, float)) or not 0.0 <= drop_path_rate < 1.0:
        raise UsageError(f"convnext: drop_path_rate must be in [0, 1). "
                         f"Received: drop_path_rate={drop_path_rate!r}")
    if not isinstance(layer_scale_init_value, (int, float)) or layer_scale_init_value < 0:
        raise UsageError(f"convnext: layer_scale_init_value must be >= 0. "
                         f"Received: layer_scale_init_value={layer_scale_init_value!r}")


def levels(drop_path_rate=0.0, layer_scale_init_value=1e-6):
    _check(drop_path_rate, layer_scale_init_value)
    return tuple(FeatureLevel(level, 4 * 2 ** i, ch)
                 for i, (level, ch) in enumerate(zip(LEVELS, PROJECTION_DIMS)))


def imagenet_weights(include_top=False):
    """The keras.applications weights file of ConvNeXt-Tiny."""
    from keras.src.applications import convnext

    fname = "convnext_tiny.h5" if include_top else "convnext_tiny_notop.h5"
    return KerasWeights(fname, convnext.BASE_WEIGHTS_PATH + fname,
                        convnext.WEIGHTS_HASHES["convnext_tiny"][0 if include_top else 1])


def constructor(drop_path_rate=0.0, layer_scale_init_value=1e-6):
    """``fn(include_top, weights, input_tensor, input_shape, ...)`` building ConvNeXt-Tiny."""
    from keras.src.applications import convnext

    return functools.partial(convnext.ConvNeXt, list(DEPTHS), list(PROJECTION_DIMS),
                             drop_path_rate=float(drop_path_rate),
                             layer_scale_init_value=float(layer_scale_init_value),
                             default_size=224, name="convnext_tiny", include_preprocessing=True)


def build(input_shape, weights=None, *, drop_path_rate=0.0, layer_scale_init_value=1e-6):
    from visionsuite.backbones.applications import build_application

    _check(drop_path_rate, layer_scale_init_value)
    taps = {level: f"convnext_tiny_stage_{i}_block_{DEPTHS[i] - 1}_identity"
            for i, level in enumerate(LEVELS)}
    return build_application(constructor(drop_path_rate, layer_scale_init_value), input_shape,
                             weights, name="convnext_tiny", taps=taps,
                             imagenet_weights=imagenet_weights())


CONVNEXT_TINY = BackboneEntry(
    name="convnext_tiny",
    build=build,
    levels=levels,
    preprocessing=PREPROCESSING,
    arch_defaults=dict(drop_path_rate=0.0, layer_scale_init_value=1e-6),
    pretrained=("imagenet",),
    weights_source=lambda weights: weights_source(imagenet_weights()),
    default_input_size=224,
    description="ConvNeXt-Tiny (keras.applications)",
)
