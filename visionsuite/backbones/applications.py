"""Backbones cut out of keras.applications models.

A family module names the keras.applications constructor, the layers to tap (stable layer
names, never auto-generated ones such as ``re_lu_38``) and the ImageNet weights file;
:func:`build_application` turns that into a model ``image (RGB 0..255) -> {"P2": ..., "P5": ...}``.
The constructor is always called with ``weights=None``: ImageNet weights are fetched through
:mod:`visionsuite.backbones.weights` (keras' own cache, clear offline errors) and loaded into
the same layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras

from visionsuite.backbones.layers import PixelNormalization
from visionsuite.backbones.registry import Preprocessing
from visionsuite.backbones.weights import KerasWeights, fetch_keras_weights, load_weights_file


def build_application(constructor: Callable[..., keras.Model], input_shape, weights, *,
                      name: str, taps: Mapping[str, str | None],
                      imagenet_weights: KerasWeights | None,
                      pixel_normalization: Preprocessing | None = None,
                      after_load: Callable[[keras.Model], None] | None = None,
                      **kwargs) -> keras.Model:
    """Build ``constructor(include_top=False, ...)`` and expose ``taps`` as dict outputs.

    Args:
        constructor: a keras.applications model function (or its configurable builder).
        input_shape: ``(height, width, 3)``.
        weights: ``None``, ``"imagenet"`` or a weights file of this backbone.
        name: name of the returned model.
        taps: level name -> layer name (``None``: the constructor's output).
        imagenet_weights: the headless ImageNet weights file keras.applications uses.
        pixel_normalization: mapping of RGB 0..255 to what the weights expect, for families
            whose keras.applications model has no built-in preprocessing (ResNet50).
        after_load: ``fn(base_model)`` run after building and after loading weights (fixes
            of non-trainable preprocessing state).
        **kwargs: passed to ``constructor``.
    """
    # Fetch first: a missing, undownloadable file fails before any model is built.
    path = fetch_keras_weights(imagenet_weights) if weights == "imagenet" else None
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    if pixel_normalization is not None:
        x = PixelNormalization.from_spec(pixel_normalization, name="pixel_normalization")(x)
    base = constructor(include_top=False, weights=None, input_tensor=x,
                       input_shape=tuple(input_shape), **kwargs)
    if path is not None:
        load_weights_file(base, path, what="ImageNet weights")
    if after_load is not None:
        after_load(base)
    outputs = {level: base.output if layer is None else base.get_layer(layer).output
               for level, layer in taps.items()}
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None and weights != "imagenet":
        load_weights_file(model, weights)
        if after_load is not None:
            after_load(base)
    return model
