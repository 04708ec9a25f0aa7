"""The default medical model: deepbrain's 3D brain extraction for T1-weighted MRI, in Keras.

Source: ``deepbrain/models/graph.pb`` inside the PyPI wheel ``deepbrain==0.1`` (MIT), a
TensorFlow 1 frozen graph (1.1 MB) of a small 3D U-Net: input ``img:0``
``[N, 128, 128, 128, 1]`` (the head resampled to 128^3 and divided by its maximum),
``training:0`` False, output ``prob:0`` (sigmoid brain probability). It is fetched once into
the visionsuite cache (:func:`deepbrain_graph_path`, ``pip download --no-deps``; offline it
fails in one line naming the file and where to put it).

Two ways to run it, checked against each other (max difference < 1e-4 on real data):

* :func:`load_graph_function`: the frozen graph itself, imported with
  ``tf.compat.v1.import_graph_def`` inside ``tf.compat.v1.wrap_function`` and pruned to
  ``img, training -> prob``, wrapped as a ``tf.function`` with ``training`` fixed to False.
* :func:`build_deepbrain_keras`: the same network rebuilt from Keras layers (3 levels of two
  3x3x3 ReLU convolutions and 2x2x2 max pooling, stride-2 transposed convolutions without
  bias, skip concatenations, a 1x1x1 sigmoid) with the graph's weights copied in by layer
  name. A plain Keras model: it saves as ``.keras`` and exports to SavedModel like any
  visionsuite model (not to TFLite: LiteRT has no builtin MaxPool3D). :func:`deepbrain_model`
  writes it once into the cache.

:func:`extract_brain` is the whole pipeline on a :class:`~visionsuite_tasks.medical.volume.Volume`:
reorient to RAS, resample to 128^3 over the same field of view (linear), divide by the maximum,
run, resample the probability back onto the input's exact grid (linear, through world space),
threshold at 0.5. The mask has the input's shape and affine exactly.

The network was trained on T1 heads *with* skull and scalp: on a skull-stripped image (such
as the MNI152 template) it treats the cortex as scalp and returns only the inner part of the
brain (see the README of the medical task for the measured numbers).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError
from visionsuite_tasks.medical.volume import Volume

DEEPBRAIN_INPUT = 128
DEEPBRAIN_CLASSES = ("background", "brain")
MODEL_NAME = "deepbrain_brain_extraction.keras"
# Bump when the Keras port changes, so cached files are rebuilt.
CONVERSION_VERSION = 1

# The network, read off the graph: (name, filters) of each 3x3x3 conv pair per level, then the
# decoder's transposed convs and convs.
_ENCODER = (("conv3d", "conv3d_1", 8), ("conv3d_2", "conv3d_3", 16), ("conv3d_4", "conv3d_5", 32))
_DECODER = (("conv3d_transpose", "conv3d_6", 32), ("conv3d_transpose_1", "conv3d_7", 16),
            ("conv3d_transpose_2", "conv3d_8", 8))


def deepbrain_graph_path() -> Path:
    """``graph.pb`` from the deepbrain wheel (fetched once into the cache;
    :func:`visionsuite.samples.deepbrain_graph`)."""
    from visionsuite import samples

    return samples.deepbrain_graph()


def _graph_def(path: str | Path | None):
    import tensorflow as tf

    path = Path(path) if path is not None else deepbrain_graph_path()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise ModelError(f"{path} is not a TensorFlow GraphDef ({type(exc).__name__}). "
                         f"Received: path={str(path)!r}") from None
    names = {n.name for n in graph_def.node}
    if not {"img", "training", "prob"} <= names:
        raise ModelError(f"{path} is not deepbrain's graph (no img/training/prob nodes). "
                         f"Received: {len(names)} nodes")
    return graph_def


def load_graph_function(path: str | Path | None = None):
    """The frozen graph as a ``tf.function``: ``f(x [N,128,128,128,1] float32) -> prob``."""
    import tensorflow as tf

    graph_def = _graph_def(path)

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    g = wrapped.graph
    pruned = wrapped.prune(feeds=[g.get_tensor_by_name("img:0"),
                                  g.get_tensor_by_name("training:0")],
                           fetches=g.get_tensor_by_name("prob:0"))

    @tf.function(input_signature=[tf.TensorSpec([None, DEEPBRAIN_INPUT, DEEPBRAIN_INPUT,
                                                 DEEPBRAIN_INPUT, 1], tf.float32)])
    def run(x):
        return pruned(x, tf.constant(False))

    run.pruned = pruned  # keep the wrapped graph alive with the function
    return run


def graph_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Every ``*/kernel`` and ``*/bias`` constant of the frozen graph, by node name."""
    from tensorflow.python.framework import tensor_util

    graph_def = _graph_def(path)
    return {n.name: tensor_util.MakeNdarray(n.attr["value"].tensor)
            for n in graph_def.node if n.op == "Const"
            and n.name.endswith(("/kernel", "/bias"))}


def build_deepbrain_keras(path: str | Path | None = None, *, input_size: int = DEEPBRAIN_INPUT):
    """deepbrain's network as a Keras functional model with the graph's weights.

    Input ``(input_size,)*3 + (1,)`` (a multiple of 8), output ``{"probabilities": sigmoid}``.
    """
    import keras
    from keras import layers

    if input_size % 8:
        raise ModelError(f"input_size must be a multiple of 8 (three poolings). "
                         f"Received: input_size={input_size}")
    weights = graph_weights(path)
    conv = {}

    def conv3(name, filters, kernel=3, activation="relu"):
        conv[name] = layers.Conv3D(filters, kernel, padding="same", activation=activation,
                                   name=name)
        return conv[name]

    inputs = keras.Input((input_size,) * 3 + (1,), name="image")
    x, skips = inputs, []
    for first, second, filters in _ENCODER:
        x = conv3(first, filters)(x)
        x = conv3(second, filters)(x)
        skips.append(x)
        x = layers.MaxPooling3D(2, name=f"pool_{second}")(x)
    for (up, after, filters), skip in zip(_DECODER, reversed(skips)):
        conv[up] = layers.Conv3DTranspose(filters, 3, strides=2, padding="same", use_bias=False,
                                          name=up)
        x = conv[up](x)
        x = layers.Concatenate(name=f"concat_{after}")([x, skip])
        x = conv3(after, filters)(x)
    x = conv3("conv3d_9", 1, kernel=1, activation="sigmoid")(x)
    model = keras.Model(inputs, {"probabilities": x}, name="deepbrain_unet3d")
    for name, layer in conv.items():
        kernel = weights.get(f"{name}/kernel")
        if kernel is None or tuple(layer.kernel.shape) != kernel.shape:
            raise ModelError(f"deepbrain graph weights do not fit layer {name}. Received: "
                             f"{None if kernel is None else kernel.shape} for "
                             f"{tuple(layer.kernel.shape)}")
        values = [kernel] + ([weights[f"{name}/bias"]] if layer.use_bias else [])
        layer.set_weights(values)
    return model


def deepbrain_model(out: str | Path | None = None) -> Path:
    """The Keras port saved as ``.keras`` (built once into the cache; rebuilt when
    :data:`CONVERSION_VERSION` changes)."""
    import keras

    from visionsuite.assets import cache_dir

    out = Path(out) if out is not None else cache_dir("models") / MODEL_NAME
    stamp = out.with_name(out.name + f".v{CONVERSION_VERSION}")
    if out.is_file() and stamp.is_file():
        return out
    model = build_deepbrain_keras()
    tmp = out.with_name(f".{out.stem}.tmp.keras")
    model.save(tmp)
    keras.backend.clear_session()
    tmp.replace(out)
    stamp.write_text("deepbrain==0.1 graph.pb ported to Keras\n")
    return out


@dataclasses.dataclass
class BrainExtraction:
    """The result of :func:`extract_brain`.

    Args:
        mask: uint8 brain mask on the input's grid (same shape and affine).
        probability: float32 brain probability on the input's grid.
        volume_ml: brain volume (mask voxels x voxel volume) in millilitres.
        seconds: time spent in the network.
    """

    mask: Volume
    probability: Volume
    volume_ml: float
    seconds: float


def prepare_input(volume: Volume) -> tuple[np.ndarray, Volume]:
    """(network input ``(1, 128, 128, 128, 1)``, the 128^3 RAS grid it lives on)."""
    from visionsuite_tasks.medical import preprocess

    if volume.array.ndim != 3:
        raise DataError(f"brain extraction takes a single-channel 3D volume. "
                        f"Received: shape {volume.array.shape}")
    if min(volume.shape) < 8:
        raise DataError(f"brain extraction needs a 3D volume; this one is {volume.shape} voxels "
                        f"(a 2D image?). Received: shape {volume.shape}")
    ras = preprocess.to_canonical(volume.with_array(volume.array.astype(np.float32)))
    grid = preprocess.resample_to_shape(ras, (DEEPBRAIN_INPUT,) * 3, order=1)
    x = grid.array
    peak = float(x.max())
    if not np.isfinite(peak) or peak <= 0:
        raise DataError(f"the volume has no positive intensities to scale (max {peak}). "
                        f"Received: {volume.source or 'an array'}")
    return (x / peak).astype(np.float32)[None, ..., None], grid


def extract_brain(volume: Volume, model=None, *, threshold: float = 0.5) -> BrainExtraction:
    """Brain mask of a T1-weighted head volume on the volume's own grid.

    Args:
        volume: a 3D T1 volume (any orientation and spacing).
        model: a callable ``x [1,128,128,128,1] -> probabilities`` (a Keras model returning
            ``{"probabilities": ...}``, or :func:`load_graph_function`); default: the Keras port.
        threshold: probability above which a voxel is brain.
    """
    from visionsuite_tasks.medical import preprocess

    x, grid = prepare_input(volume)
    if model is None:
        model = build_deepbrain_keras()
    start = time.perf_counter()
    out = model(x)
    if isinstance(out, dict):
        out = out["probabilities"]
    prob = np.asarray(out, np.float32).reshape((DEEPBRAIN_INPUT,) * 3)
    seconds = time.perf_counter() - start
    back = preprocess.resample_like(grid.with_array(prob), volume, order=1)
    mask = volume.with_array((back.array > threshold).astype(np.uint8))
    probability = volume.with_array(back.array.astype(np.float32))
    ml = float(mask.array.sum()) * volume.voxel_volume_ml
    return BrainExtraction(mask, probability, ml, seconds)


DEFAULT_MODEL_NAME = "deepbrain_medical"


def default_model_metadata():
    """The visionsuite metadata (v2) of the default medical model: task ``medical``, classes
    ``background, brain``, a DHWC ``(128, 128, 128, 1)`` input in ``[0, 1]``, one output
    ``probabilities`` (one sigmoid channel), and the task options it needs (the whole head
    resampled to the input, divided by its maximum)."""
    from visionsuite.models import ModelMetadata
    from visionsuite.specs import InputSpec, OutputSpec

    side = DEEPBRAIN_INPUT
    return ModelMetadata(
        task="medical", classes=DEEPBRAIN_CLASSES,
        input_spec=InputSpec((side, side, side, 1), "DHWC", value_range=(0.0, 1.0), divisor=8),
        outputs=(OutputSpec("probabilities", (side, side, side, 1)),),
        task_config={"image_size": side, "channels": 1, "grid": "resize", "normalize": "max",
                     "window": "", "threshold": 0.5, "levels": 4},
        extra={"source": "deepbrain==0.1 models/graph.pb (MIT), ported to Keras",
               "conversion_version": CONVERSION_VERSION})


def default_model_path(folder: str | Path | None = None) -> Path:
    """deepbrain as a SavedModel folder with visionsuite metadata (``run``/``predict``'s
    default for the medical task), built once into the cache from :func:`deepbrain_model`.
    A SavedModel, not TFLite: LiteRT has no builtin 3D max pooling."""
    import keras

    from visionsuite.assets import cache_dir
    from visionsuite.runtime.convert import keras_to_savedmodel

    folder = Path(folder) if folder is not None else cache_dir("models")
    out = folder / f"{DEFAULT_MODEL_NAME}.v{CONVERSION_VERSION}.savedmodel"
    if (out / "saved_model.pb").is_file():
        return out
    model = keras.models.load_model(deepbrain_model(), compile=False)
    keras_to_savedmodel(model, default_model_metadata(), out)
    keras.backend.clear_session()
    return out
