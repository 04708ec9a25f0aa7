"""``resnet50`` from keras.applications.

keras' ResNet50 has no preprocessing layer: its ImageNet weights expect "caffe" inputs (BGR,
ImageNet mean subtracted, no scaling). A :class:`PixelNormalization` layer in front of it maps
RGB 0..255 to that. The levels tap the last block of each stage (``conv2_block3_out`` ...).

Architecture keywords: none (keras' ResNet50 has no configurable parts).
"""

from __future__ import annotations

from visionsuite.backbones.registry import BackboneEntry, FeatureLevel, Preprocessing
from visionsuite.backbones.weights import KerasWeights, weights_source

# caffe: BGR, minus the ImageNet mean in BGR order, no scaling.
PREPROCESSING = Preprocessing(scale=1.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
                              channel_order="BGR")
TAPS = (("P2", "conv2_block3_out", 4, 256), ("P3", "conv3_block4_out", 8, 512),
        ("P4", "conv4_block6_out", 16, 1024), ("P5", "conv5_block3_out", 32, 2048))


def levels():
    return tuple(FeatureLevel(level, stride, ch) for level, _, stride, ch in TAPS)


def imagenet_weights(include_top=False):
    """The keras.applications weights file of ResNet50."""
    from keras.src.applications import resnet

    fname = ("resnet50_weights_tf_dim_ordering_tf_kernels.h5" if include_top
             else "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    return KerasWeights(fname, resnet.BASE_WEIGHTS_PATH + fname,
                        resnet.WEIGHTS_HASHES["resnet50"][0 if include_top else 1])


def build(input_shape, weights=None):
    import keras

    from visionsuite.backbones.applications import build_application

    return build_application(
        keras.applications.ResNet50, input_shape, weights, name="resnet50",
        taps={level: layer for level, layer, _, _ in TAPS},
        imagenet_weights=imagenet_weights(), pixel_normalization=PREPROCESSING)


RESNET50 = BackboneEntry(
    name="resnet50",
    build=build,
    levels=levels,
    preprocessing=PREPROCESSING,
    arch_defaults={},
    pretrained=("imagenet",),
    weights_source=lambda weights: weights_source(imagenet_weights()),
    default_input_size=224,
    description="ResNet50 (keras.applications; caffe BGR mean subtraction inside the model)",
)
