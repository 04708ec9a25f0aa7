"""Test-only toy tasks that prove the task contract v2 holds the new shapes of work.

* :class:`BrightTask` -- the fifteen-line example of ``visionsuite/task.py``'s docstring.
* :class:`BoxesTask` -- a variable number of boxes per image (padded targets, two named
  outputs ``boxes`` and ``scores``).
* :class:`ClipTask` -- ``THWC`` clips, a window of frames with a stride (``ClipState``).
* :class:`VolumeTask` -- ``DHWC`` volumes larger than the model input, tiled and stitched back
  (``TiledState``).

Their data is ``.npz`` written by ``make_tiny_dataset``; the models are a few thousand
parameters of built-in Keras layers (safe-mode loadable without registration).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from visionsuite.specs import InputSpec, OutputSpec
from visionsuite.task import Dataset, ImageTask, Prediction, Sample, Task, TaskConfig


def npz_samples(path, *keys) -> list[Sample]:
    """Samples of an ``.npz`` file: ``images`` plus one target array per key."""
    with np.load(path, allow_pickle=False) as f:
        images = f["images"]
        targets = [f[k] for k in keys]
    return [Sample(img, tuple(t[i] for t in targets) if len(targets) > 1 else targets[0][i],
                   f"{path}[{i}]") for i, img in enumerate(images)]


def image_label_dataset(task, dataset, *, batch_size, training, seed=0):
    """Batches of ``(images float32, label int32)`` resized to the task's input."""
    import tensorflow as tf

    from visionsuite.data.pipeline import make_tf_dataset

    h, w = task.input_spec().spatial
    return make_tf_dataset(
        dataset, output_signature=(tf.TensorSpec((h, w, 3), tf.float32),
                                   tf.TensorSpec((), tf.int32)),
        batch_size=batch_size, training=training, seed=seed, transform=task._eval_transform())


def classifier_head(backbone, n: int):
    """Global pooling of the deepest level and a softmax output named ``probabilities``."""
    import keras

    inputs = keras.Input(backbone.spec.input_shape, name="image")
    deepest = max(backbone.spec.levels, key=lambda lv: lv.stride).name
    x = keras.layers.GlobalAveragePooling2D()(backbone.model(inputs)[deepest])
    out = keras.layers.Dense(n, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, {"probabilities": out})


@dataclasses.dataclass
class LabelPrediction(Prediction):
    label: str = ""
    score: float = 0.0


# === The docstring example ===
class BrightTask(ImageTask):
    name = "bright"
    dataset_formats = {"npz": "images (N,H,W,3) uint8 and labels (N,)"}

    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        d = np.load(path)
        return Dataset(["dark", "bright"], [Sample(i, int(t)) for i, t in zip(d["images"], d["labels"])])

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        return image_label_dataset(self, dataset, batch_size=batch_size, training=training, seed=seed)

    def build_model(self, backbone, classes):
        return classifier_head(backbone, len(classes))

    def loss(self, classes, dataset=None):
        return "sparse_categorical_crossentropy"

    def postprocess(self, outputs, meta, classes):
        p = outputs["probabilities"]
        return LabelPrediction(classes, label=classes[int(p.argmax())], score=float(p.max()))

    # test support: not part of the fifteen lines
    def make_tiny_dataset(self, folder, classes):
        rng = np.random.default_rng(0)
        labels = np.arange(8) % 2
        images = (rng.integers(0, 80, (8, 24, 24, 3)) + 150 * labels[:, None, None, None])
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.savez(Path(folder) / "bright.npz", images=images.astype(np.uint8), labels=labels)
        return Path(folder) / "bright.npz"


# === Variable-length boxes ===
@dataclasses.dataclass(frozen=True)
class BoxesConfig(TaskConfig):
    image_size: int = 32
    # (int) box slots the model predicts
    slots: int = 4
    # (float) minimum score of a reported box
    conf: float = 0.5


@dataclasses.dataclass
class BoxesPrediction(Prediction):
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)


class BoxesTask(Task):
    """Bright squares on a dark image, 0 to 3 per image: boxes ``(N_i, 4)`` in [0, 1]."""

    name = "toy_boxes"
    Config = BoxesConfig
    dataset_formats = {"npz": "images (N,H,W,3), boxes (N,M,4) padded with -1"}

    def output_specs(self):
        return (OutputSpec("boxes", (self.config.slots, 4)), OutputSpec("scores", (self.config.slots,)))

    def make_tiny_dataset(self, folder, classes):
        rng = np.random.default_rng(0)
        s = self.config.image_size
        images = rng.integers(0, 40, (6, s, s, 3)).astype(np.uint8)
        boxes = np.full((6, 3, 4), -1.0, np.float32)
        for i in range(6):
            for k in range(min(i % 4, 3)):  # 0, 1, 2 or 3 boxes
                x0, y0 = rng.integers(0, s - 8, 2)
                images[i, y0:y0 + 8, x0:x0 + 8] = 230
                boxes[i, k] = np.array([x0, y0, x0 + 8, y0 + 8]) / s
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.savez(Path(folder) / "boxes.npz", images=images, boxes=boxes)
        return Path(folder) / "boxes.npz"

    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        samples = [Sample(s.image, s.target[s.target[:, 0] >= 0], s.source)
                   for s in npz_samples(path, "boxes")]
        return Dataset(["square"], samples)

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        import tensorflow as tf

        from visionsuite.data.collate import Padded
        from visionsuite.data.pipeline import make_tf_dataset

        s, k = self.config.image_size, self.config.slots

        def to_arrays(out, sample):
            n = len(sample.target)  # variable: 0..3 boxes
            return out["image"], {"boxes": sample.target,
                                  "scores": (np.arange(k) < n).astype(np.float32)}

        signature = (tf.TensorSpec((s, s, 3), tf.float32),
                     {"boxes": Padded(tf.TensorSpec((None, 4), tf.float32), max_len=k),
                      "scores": tf.TensorSpec((k,), tf.float32)})
        return make_tf_dataset(dataset, output_signature=signature, batch_size=batch_size,
                               training=training, seed=seed, to_arrays=to_arrays)

    def build_model(self, backbone, classes):
        import keras

        k = self.config.slots
        inputs = keras.Input(backbone.spec.input_shape, name="image")
        deepest = max(backbone.spec.levels, key=lambda lv: lv.stride).name
        x = keras.layers.GlobalAveragePooling2D()(backbone.model(inputs)[deepest])
        boxes = keras.layers.Reshape((k, 4), name="boxes")(
            keras.layers.Dense(4 * k, activation="sigmoid")(x))
        scores = keras.layers.Dense(k, activation="sigmoid", name="scores")(x)
        return keras.Model(inputs, {"scores": scores, "boxes": boxes})

    def loss(self, classes, dataset=None):
        import keras

        def boxes_loss(y_true, y_pred):  # padded rows (-1) do not count
            mask = keras.ops.cast(y_true[..., 0] >= 0, "float32")
            err = keras.ops.sum(keras.ops.square(y_true - y_pred), axis=-1) * mask
            return keras.ops.sum(err, axis=-1) / keras.ops.maximum(keras.ops.sum(mask, -1), 1.0)

        return {"boxes": boxes_loss, "scores": keras.losses.BinaryCrossentropy()}

    def postprocess(self, outputs, meta, classes):
        keep = outputs["scores"] >= self.config.conf
        return BoxesPrediction(classes, boxes=outputs["boxes"][keep].round(4).tolist(),
                               scores=outputs["scores"][keep].round(4).tolist())


# === Clips with a stride ===
@dataclasses.dataclass(frozen=True)
class ClipConfig(TaskConfig):
    image_size: int = 16
    # (int) frames per clip
    frames: int = 4
    # (int) one clip every `stride` frames in a stream
    stride: int = 2


@dataclasses.dataclass
class ClipPrediction(Prediction):
    label: str = ""
    frames: list = dataclasses.field(default_factory=list)
    state: int = 0


class ClipCounters:
    """How many clip states the engine made and closed (see :func:`clip_state_class`)."""

    made = 0
    closed = 0


def clip_state_class():
    from visionsuite.streams.state import ClipState as Base

    class Numbered(Base):
        """A ClipState whose contexts carry a serial number (which state made the window)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            ClipCounters.made += 1
            self.serial = ClipCounters.made

        def push(self, frame_bgr, meta):
            for x, ctx in super().push(frame_bgr, meta):
                yield x, dict(ctx, state=self.serial)

        def close(self):
            ClipCounters.closed += 1

    return Numbered


class ClipTask(Task):
    """Clips of a dot moving left or right."""

    name = "toy_clip"
    Config = ClipConfig
    dataset_formats = {"npz": "clips (N,T,H,W,3) uint8 and labels (N,)"}

    def input_spec(self):
        s = self.config.image_size
        return InputSpec((self.config.frames, s, s, 3), "THWC")

    def make_tiny_dataset(self, folder, classes):
        t, s = self.config.frames, self.config.image_size
        clips = np.zeros((6, t, s, s, 3), np.uint8)
        labels = np.arange(6) % 2
        for i, lab in enumerate(labels):
            for f in range(t):
                x = 2 + 3 * f if lab == 0 else s - 3 - 3 * f
                clips[i, f, s // 2 - 1:s // 2 + 2, max(x - 1, 0):x + 2] = 255
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.savez(Path(folder) / "clips.npz", images=clips, labels=labels)
        return Path(folder) / "clips.npz"

    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        return Dataset(["right", "left"], npz_samples(path, "labels"))

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        import tensorflow as tf

        from visionsuite.data.pipeline import make_tf_dataset

        def load(sample):
            return {"image": sample.image}

        def to_arrays(out, sample):
            return out["image"], int(sample.target)

        return make_tf_dataset(dataset, output_signature=(
            tf.TensorSpec(self.input_spec().shape, tf.float32), tf.TensorSpec((), tf.int32)),
            batch_size=batch_size, training=training, seed=seed, load=load, to_arrays=to_arrays)

    def build_model(self, backbone, classes):
        import keras  # a per-clip 3D convolution: the 2D backbone is not needed here

        inputs = keras.Input(self.input_spec().shape, name="image")
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        x = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling3D()(x)
        out = keras.layers.Dense(len(classes), activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, out)

    def loss(self, classes, dataset=None):
        return "sparse_categorical_crossentropy"

    def new_state(self, source, spec, classes):
        return clip_state_class()(self, source, spec, classes, stride=self.config.stride)

    def postprocess(self, outputs, meta, classes):
        p = outputs["probabilities"]
        return ClipPrediction(classes, label=classes[int(p.argmax())],
                              frames=[int(i) for i in meta["frames"]], state=meta["state"])


# === Tiled volumes ===
@dataclasses.dataclass(frozen=True)
class VolumeConfig(TaskConfig):
    image_size: int = 16
    # (int) slices of one tile
    depth: int = 8
    # (float) overlap of neighbouring tiles
    overlap: float = 0.25


@dataclasses.dataclass
class VolumePrediction(Prediction):
    shape: list = dataclasses.field(default_factory=list)
    foreground: float = 0.0
    mask: np.ndarray | None = None


class VolumeTask(Task):
    """Bright cubes in noisy one-channel volumes, segmented voxel by voxel."""

    name = "toy_volume"
    Config = VolumeConfig
    dataset_formats = {"npz": "volumes (N,D,H,W,1) float32 and masks (N,D,H,W) uint8"}

    def input_spec(self):
        s = self.config.image_size
        return InputSpec((self.config.depth, s, s, 1), "DHWC", value_range=(0.0, 1.0))

    def make_tiny_dataset(self, folder, classes):
        rng = np.random.default_rng(0)
        d, h, w, _ = self.input_spec().shape
        volumes = rng.uniform(0, 0.3, (4, d, h, w, 1)).astype(np.float32)
        masks = np.zeros((4, d, h, w), np.uint8)
        for i in range(4):
            z, y, x = rng.integers(0, [d - 3, h - 6, w - 6])
            masks[i, z:z + 3, y:y + 6, x:x + 6] = 1
        volumes[masks == 1] += 0.6
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.savez(Path(folder) / "volumes.npz", images=volumes, masks=masks)
        return Path(folder) / "volumes.npz"

    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        return Dataset(["background", "cube"], npz_samples(path, "masks"))

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        import tensorflow as tf

        from visionsuite.data.pipeline import make_tf_dataset

        spec = self.input_spec()
        return make_tf_dataset(dataset, output_signature=(
            tf.TensorSpec(spec.shape, tf.float32), tf.TensorSpec(spec.shape[:-1], tf.int32)),
            batch_size=batch_size, training=training, seed=seed,
            load=lambda s: {"image": s.image}, to_arrays=lambda out, s: (out["image"], s.target))

    def build_model(self, backbone, classes):
        import keras  # a fully convolutional 3D head: tiles of any position stitch back

        inputs = keras.Input(self.input_spec().shape, name="image")
        x = keras.layers.Conv3D(8, 3, padding="same", activation="relu")(inputs)
        out = keras.layers.Conv3D(len(classes), 1, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, out)

    def loss(self, classes, dataset=None):
        return "sparse_categorical_crossentropy"

    def new_state(self, source, spec, classes):
        from visionsuite.streams.state import TiledState

        return TiledState(self, source, spec, classes, overlap=self.config.overlap)

    def postprocess(self, outputs, meta, classes):
        mask = outputs["probabilities"].argmax(-1).astype(np.uint8)
        return VolumePrediction(classes, shape=list(mask.shape),
                                foreground=float((mask == 1).mean()), mask=mask)


TOY_TASKS = (BrightTask, BoxesTask, ClipTask, VolumeTask)
