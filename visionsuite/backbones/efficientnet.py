"""``efficientnet_b0``..``b3`` and ``efficientnet_v2_b0``..``b2`` from keras.applications.

Both keep keras' built-in preprocessing: RGB 0..255 -> ``(x / 255 - mean) / std`` with the
ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

EfficientNet (V1) note: keras.applications only adds the ``1/sqrt(std)`` correction of its
``Normalization`` layer when called with ``weights="imagenet"`` (keras issue TF#49930). Here the
constructor is always called with ``weights=None``, so the layer's mean and variance are set to
the exact ImageNet statistics instead -- the same normalisation with or without weights.

The models are built with keras' configurable builders (``keras.src.applications``) to expose
the stochastic-depth rate, which the public ``EfficientNetB0()`` functions fix at 0.2.

Architecture keywords:
    drop_connect_rate: stochastic-depth rate of the last block (linearly smaller before it).
"""

from __future__ import annotations

import functools

import numpy as np

from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.backbones.weights import KerasWeights, weights_source
from visionsuite.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = Preprocessing(scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD)

# name -> (version, variant, width, depth, default size, (P2, P3, P4 tap layers), channels P2..P5)
VARIANTS = {
    "efficientnet_b0": (1, "b0", 1.0, 1.0, 224, ("block2b_add", "block3b_add", "block5c_add"),
                        (24, 40, 112, 1280)),
    "efficientnet_b1": (1, "b1", 1.0, 1.1, 240, ("block2c_add", "block3c_add", "block5d_add"),
                        (24, 40, 112, 1280)),
    "efficientnet_b2": (1, "b2", 1.1, 1.2, 260, ("block2c_add", "block3c_add", "block5d_add"),
                        (24, 48, 120, 1408)),
    "efficientnet_b3": (1, "b3", 1.2, 1.4, 300, ("block2c_add", "block3c_add", "block5e_add"),
                        (32, 48, 136, 1536)),
    "efficientnet_v2_b0": (2, "b0", 1.0, 1.0, 224, ("block2b_add", "block3b_add", "block5e_add"),
                           (32, 48, 112, 1280)),
    "efficientnet_v2_b1": (2, "b1", 1.0, 1.1, 240, ("block2c_add", "block3c_add", "block5f_add"),
                           (32, 48, 112, 1280)),
    "efficientnet_v2_b2": (2, "b2", 1.1, 1.2, 260, ("block2c_add", "block3c_add", "block5f_add"),
                           (32, 56, 120, 1408)),
}
STRIDES = (("P2", 4), ("P3", 8), ("P4", 16), ("P5", 32))


def _check(drop_connect_rate):
    if not isinstance(drop_connect_rate, (int, float)) or not 0.0 <= drop_connect_rate < 1.0:
        raise UsageError(f"efficientnet: drop_connect_rate must be in [0, 1). "
                         f"Received: drop_connect_rate={drop_connect_rate!r}")


def levels(name, drop_connect_rate=0.2):
    _check(drop_connect_rate)
    channels = VARIANTS[name][-1]
    return tuple(FeatureLevel(level, stride, ch) for (level, stride), ch in zip(STRIDES, channels))


def keras_model_name(name):
    version, variant = VARIANTS[name][:2]
    return f"efficientnet{variant}" if version == 1 else f"efficientnetv2-{variant}"


def imagenet_weights(name, include_top=False):
    """The keras.applications weights file of this variant."""
    from keras.src.applications import efficientnet, efficientnet_v2

    version, variant = VARIANTS[name][:2]
    module = efficientnet if version == 1 else efficientnet_v2
    fname = keras_model_name(name) + (".h5" if include_top else "_notop.h5")
    return KerasWeights(fname, module.BASE_WEIGHTS_PATH + fname,
                        module.WEIGHTS_HASHES[variant][0 if include_top else 1])


def set_imagenet_normalization(base):
    """Give EfficientNet (V1)'s adapt-style ``Normalization`` layer the ImageNet statistics."""
    import keras

    for layer in base.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            layer.adapt_mean.assign(np.asarray(IMAGENET_MEAN, "float32"))
            layer.adapt_variance.assign(np.square(np.asarray(IMAGENET_STD, "float32")))
            layer.finalize_state()


def constructor(name, drop_connect_rate=0.2):
    """``fn(include_top, weights, input_tensor, input_shape, ...)`` building this variant."""
    from keras.src.applications import efficientnet, efficientnet_v2

    version, variant, width, depth, size = VARIANTS[name][:5]
    builder = efficientnet.EfficientNet if version == 1 else efficientnet_v2.EfficientNetV2
    return functools.partial(builder, width, depth, size, drop_connect_rate=float(drop_connect_rate),
                             name=keras_model_name(name))


def build(name, input_shape, weights=None, *, drop_connect_rate=0.2):
    from visionsuite.backbones.applications import build_application

    _check(drop_connect_rate)
    version, taps = VARIANTS[name][0], VARIANTS[name][5]
    kwargs = {} if version == 1 else {"include_preprocessing": True}
    return build_application(
        constructor(name, drop_connect_rate), input_shape, weights, name=name,
        taps={"P2": taps[0], "P3": taps[1], "P4": taps[2], "P5": "top_activation"},
        imagenet_weights=imagenet_weights(name),
        after_load=set_imagenet_normalization if version == 1 else None, **kwargs)


def _entry(name):
    version, variant, _, _, size = VARIANTS[name][:5]
    title = f"EfficientNet{'V2' if version == 2 else ''}-{variant.upper()}"
    return BackboneEntry(
        name=name,
        build=functools.partial(build, name),
        levels=functools.partial(levels, name),
        preprocessing=PREPROCESSING,
        arch_defaults=dict(drop_connect_rate=0.2),
        pretrained=("imagenet",),
        weights_source=lambda weights: weights_source(imagenet_weights(name)),
        default_input_size=size,
        description=f"{title} (keras.applications)",
    )


BACKBONES = tuple(_entry(name) for name in VARIANTS)
