"""The task-plugin contract (version 2): what a domain team implements to add a task.

A task is one class, registered in its package's ``pyproject.toml`` (built-in tasks register
exactly the same way)::

    [project.entry-points."visionsuite.tasks"]
    counting = "my_package.task:CountingTask"

Everything generic -- the training loop, checkpoints, precision, distribution, the stream
engine, export, evaluation reports and the CLI -- lives in the core. A task supplies what is
specific to it. Five methods are abstract; every other hook has a default:

=================================  ==========================================================
``load_dataset``                   read a dataset into :class:`Dataset` (skips reported)
``make_tf_dataset``                batches of ``(features, targets)``; dicts and padded or
                                   ragged parts allowed (:mod:`visionsuite.data.collate`)
``build_model``                    a head on a registry backbone, named outputs
``loss``                           the Keras loss (a dict of losses for several outputs)
``postprocess``                    ``{output name: array}`` of one item -> a :class:`Prediction`
``input_spec`` / ``output_specs``  what the model eats and returns (:mod:`visionsuite.specs`);
                                   default: a square RGB image of ``config.image_size`` and one
                                   output ``"probabilities"``
``preprocess``                     one RGB image -> model input (default: resize to the spec)
``new_state``                      the per-source :class:`~visionsuite.streams.state.State`:
                                   frames -> model inputs -> predictions (default: 1 -> 1)
``metrics`` / ``evaluate``         fit metrics; whole-dataset scores + ``evaluation.json``
``render`` / ``to_record``         draw a prediction; one JSON line (default: all JSON fields)
``summary``                        one line of a record for ``predict`` (default: compact JSON)
``parity``                         export parity in the task's own terms (default: max / mean
                                   difference of every output, argmax agreement)
``sinks``                          artefact writers (mask PNGs, NIfTI) for run / predict
``open_source``                    a source the task reads itself (a NIfTI file, a DICOM
                                   series folder: one frame per volume, geometry in
                                   ``Frame.meta``); default ``None``: the engine's own sources
``options``                        the task's own CLI options of ``run`` / ``predict`` /
                                   ``evaluate`` (``--conf 0.4``), no core change needed
``make_tiny_dataset``              a few samples for :func:`visionsuite.testing.check_task`
``convert_dataset``                ``visionsuite convert <task> SRC DST --to FORMAT`` between
                                   the task's dataset formats (default: a usage error)
=================================  ==========================================================

Conventions: images are ``uint8`` RGB ``(H, W, 3)`` (the engine converts OpenCV's BGR frames);
models take float32 RGB pixels in ``[0, 255]`` and normalise inside (exports need no numbers
beside them); a task object holds no per-stream memory -- temporal smoothing, clip buffers,
trackers and tile stitching live in the :class:`~visionsuite.streams.state.State` the engine
creates per source and drops at the end of input and on reconnect. A trained model carries
:class:`~visionsuite.models.ModelMetadata` (task, classes, input spec, named outputs), so every
runtime hands ``postprocess`` the same ``{name: array}`` mapping.

A complete task in about fifteen lines (classification of brightness, one output)::

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

(``tests/toy_tasks.py`` holds this and three more: variable-length boxes, clips, volumes.)
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionsuite.errors import UsageError
from visionsuite.specs import InputSpec, OutputSpec

# The one name of every task's evaluation report (written by ``evaluate`` into ``out_dir``).
REPORT_NAME = "evaluation.json"


def resize_to_spec(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``image`` resized to ``spec``'s image size with area interpolation (the base
    preprocessing's resize, in the image's own dtype)."""
    import cv2

    sh, sw = spec.spatial
    return cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Options common to every task. A task subclasses this (frozen) to add its own."""

    # (int) side of the square model input, in pixels
    image_size: int = 224


@dataclasses.dataclass(frozen=True)
class ImageTaskConfig(TaskConfig):
    """The image options shared by image tasks (size and training augmentation)."""

    # (int) side of the square model input, in pixels
    image_size: int = 224
    # (float) training augmentation strength in [0, 1]: 0 = resize (+ flips) only
    augment: float = 0.5
    # (bool) random horizontal flips while training
    hflip: bool = True
    # (bool) random vertical flips while training (microscopy, aerial, medical slices)
    vflip: bool = False
    # (bool) random 90-degree rotations while training (orientation-free images)
    rot90: bool = False
    # (bool) colour jitter while training (strength from `augment`)
    color_jitter: bool = True
    # (bool) random rotation / shear while training
    affine: bool = True

    def __post_init__(self):
        self.check((self.image_size >= 8, "image_size must be >= 8", "image_size"),
                   (0.0 <= self.augment <= 1.0, "augment must be in [0, 1]", "augment"))

    def check(self, *rules: tuple[bool, str, str]) -> None:
        """Raise one :class:`UsageError` for the first failed ``(ok, message, key)`` rule."""
        for ok, message, key in rules:
            if not ok:
                raise UsageError(f"{message}. Received: {key}={getattr(self, key)!r}")


@dataclasses.dataclass(frozen=True)
class TaskOption:
    """A command-line option a task adds to ``run``, ``predict`` and ``evaluate``.

    ``TaskOption("conf", "minimum score")`` gives ``--conf VALUE`` setting ``config.conf``;
    the value type comes from the Config field.
    """

    # (str) the Config field the option sets
    key: str
    # (str) one line of help
    help: str = ""
    # (str) the flag (default: ``--`` + key with ``_`` -> ``-``)
    flag: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One item of a dataset: where the image is, and its target (task-specific)."""

    image: Any  # a path, or an in-memory uint8 array
    target: Any  # class index, float, mask path / array, boxes ...
    source: str = ""  # human-readable origin for error messages


@dataclasses.dataclass
class Dataset:
    """A labelled dataset as read by a task's reader: class names plus samples."""

    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (item, reason)

    def __len__(self) -> int:
        return len(self.samples)


@dataclasses.dataclass
class Prediction:
    """A task's interpretation of one model output. Tasks subclass it with their fields."""

    classes: Sequence[str]


class Task(abc.ABC):
    """Base class of every visionsuite task plugin.

    Subclasses set ``name``, ``Config`` (a frozen dataclass deriving from
    :class:`TaskConfig`) and ``dataset_formats``, and implement the abstract methods.

    Args:
        config: the task's options; ``None`` uses the ``Config`` defaults.

    Example:
        >>> task = ClassificationTask(ClassificationTask.Config(image_size=96))
        >>> data = task.load_dataset("photos/", split="train")
        >>> model = task.build_model(build_backbone("simple_cnn", (96, 96, 3)), data.classes)
    """

    # (str) the name users type: `visionsuite run <name>`
    name: ClassVar[str]
    # (type) frozen dataclass of the task's options
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    # (dict) dataset format name -> one-line description
    dataset_formats: ClassVar[Mapping[str, str]] = {}
    # (tuple) modules defining the task's serialisable Keras objects (layers, losses);
    # imported before one of its ``.keras`` models is loaded, so that safe-mode loading finds
    # them while the plugin itself stays importable without Keras
    keras_modules: ClassVar[tuple[str, ...]] = ()
    # (tuple) the task's own options of run / predict / evaluate (see TaskOption)
    options: ClassVar[tuple[TaskOption, ...]] = ()

    def __init__(self, config: TaskConfig | None = None):
        self.config = config if config is not None else self.Config()

    # === Specs ===
    def input_spec(self) -> InputSpec:
        """What the model eats (default: a square RGB image of ``config.image_size``)."""
        return InputSpec.image(int(self.config.image_size))

    def output_specs(self) -> tuple[OutputSpec, ...]:
        """The model's named outputs (default: one, ``"probabilities"``)."""
        return (OutputSpec("probabilities"),)

    # === Data ===
    @abc.abstractmethod
    def load_dataset(
        self, path: str | Path, *, split: str | None = None, format: str | None = None,
        strict: bool = False, classes: Sequence[str] | None = None,
    ) -> Dataset:
        """Read a dataset. Unreadable items are skipped and listed in ``Dataset.skipped``
        (or raise :class:`~visionsuite.errors.DataError` when ``strict``).

        ``classes`` (the training set's, or a model's) fixes the class list and its indices,
        so that a validation or test set lacking a class still lines up; a task whose
        classes come from the data itself raises ``DataError`` when they cannot match."""

    @abc.abstractmethod
    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        """A batched ``tf.data.Dataset`` of ``(features, targets)`` ready for ``fit``; when
        ``training``, shuffled and augmented reproducibly from ``seed``. Either side may be a
        dict; variable-length parts are padded by :mod:`visionsuite.data.collate`."""

    def make_tiny_dataset(self, folder: str | Path, classes: Sequence[str]) -> Path:
        """Write a dataset of a few samples with ``classes`` into ``folder`` and return the
        path ``load_dataset`` reads; used by :func:`visionsuite.testing.check_task`."""
        raise NotImplementedError(f"task {self.name!r} does not implement make_tiny_dataset")

    def convert_dataset(self, source: str | Path, destination: str | Path, to: str, *,
                        source_format: str | None = None, link_images: bool = False,
                        strict: bool = False) -> str:
        """Write the dataset at ``source`` (format detected, or ``source_format``) to
        ``destination`` in the format ``to`` (one of :attr:`dataset_formats`); returns a
        one-line report (items written, items skipped). Used by ``visionsuite convert``.
        Default: the task converts nothing (a :class:`UsageError`)."""
        raise UsageError(f"task {self.name!r} has no dataset conversion. Received: "
                         f"convert {self.name} {source} --to {to}")

    # === Model ===
    @abc.abstractmethod
    def build_model(self, backbone, classes: Sequence[str]):
        """Put the task's head on ``backbone`` (a :class:`~visionsuite.backbones.Backbone`)
        and return a ``keras.Model`` taking :meth:`input_spec` inputs and returning the
        outputs of :meth:`output_specs` (a dict by name, or a list in that order)."""

    @abc.abstractmethod
    def loss(self, classes: Sequence[str], dataset: Dataset | None = None):
        """The Keras loss. ``dataset`` is the training set, for class weights."""

    def metrics(self, classes: Sequence[str]) -> list:
        """Keras metrics reported during ``fit`` (default: none)."""
        return []

    def evaluate(self, model, dataset: Dataset, out_dir: Path | None = None, *,
                 batch_size: int = 32) -> dict[str, float]:
        """Score ``model`` over the whole dataset; with ``out_dir``, write the report
        ``out_dir / REPORT_NAME`` (and plots). Default: the compiled loss and metrics."""
        from visionsuite.files import write_json_atomic

        model.compile(loss=self.loss(dataset.classes, dataset),
                      metrics=self.metrics(dataset.classes))
        ds = self.make_tf_dataset(dataset, batch_size=batch_size, training=False)
        scores = model.evaluate(ds, verbose=0, return_dict=True)
        scores = {k: float(v) for k, v in scores.items()}
        scores["num_samples"] = len(dataset)
        if out_dir is not None:
            write_json_atomic(Path(out_dir) / REPORT_NAME, scores, sort_keys=True)
        return scores

    # === Inference ===
    def default_model(self):
        """The model ``visionsuite run|predict <task>`` uses when no ``--model`` is given, or
        ``None`` when the task has none (then ``--model`` is required).

        Returns a model reference that :func:`visionsuite.runtime.load_runtime` accepts (e.g.
        the path of a ``.tflite`` file with embedded metadata, or ``imagenet:<backbone>``).
        It may fetch or build the file into the cache on the first call, and raise
        :class:`~visionsuite.assets.AssetError` when that is impossible offline.
        """
        return None

    def new_state(self, source: str, spec: InputSpec, classes: Sequence[str]):
        """The per-source :class:`~visionsuite.streams.state.State` of a stream (default:
        one frame -> one input -> one prediction)."""
        from visionsuite.streams.state import FrameState

        return FrameState(self, source, spec, classes)

    def preprocess(self, image_rgb: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, dict]:
        """Turn one RGB uint8 image into one model input of ``spec``'s image size (float32
        ``(H, W, C)``); the dict is handed back to :meth:`postprocess` as ``meta``."""
        h, w = image_rgb.shape[:2]
        return resize_to_spec(image_rgb, spec).astype(np.float32), {"height": h, "width": w}

    @abc.abstractmethod
    def postprocess(self, outputs: Mapping[str, np.ndarray], meta: dict,
                    classes: Sequence[str]) -> Prediction:
        """Turn one item's outputs ``{name: array without batch axis}`` into a
        :class:`Prediction`. ``meta`` is what :meth:`preprocess` returned plus, from the
        stream engine, ``source`` (a stable id) and ``frame`` (its index)."""

    def render(self, image_bgr: np.ndarray, prediction: Prediction) -> np.ndarray:
        """Draw ``prediction`` on a BGR frame; returns a frame (the input is not modified).
        Default: the frame unchanged."""
        return image_bgr

    def to_record(self, prediction: Prediction) -> dict:
        """A JSON-serialisable dict for one prediction (one line of a results file).
        Default: the prediction's fields that are numbers, strings, lists or dicts."""
        out = {}
        for f in dataclasses.fields(prediction):
            value = getattr(prediction, f.name)
            if f.name != "classes" and isinstance(value, (int, float, str, bool, list, dict,
                                                          type(None))):
                out[f.name] = value
        return out

    def summary(self, record: dict, limit: int = 200) -> str:
        """One line for a record (``visionsuite predict`` prints it after the file name).
        Default: the record as compact JSON, cut at ``limit`` characters."""
        import json

        text = json.dumps(record, default=str)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def stream_model(self, model):
        """Optional: an inference variant of the Keras ``model`` whose outputs are what the
        stream's ``postprocess`` needs, computed inside the graph (e.g. class ids at the
        head's native resolution instead of full-resolution probabilities), as
        ``(keras.Model, output specs)``; the runtime converts it for ``visionsuite run``
        (cached beside the model), while evaluation and ``export`` keep ``model``. Called
        with ``model=None`` first: return ``None`` when this task, as configured, makes no
        variant, anything else when it does (so the model is loaded only then).
        Default: ``None`` (the stream runs ``model`` itself)."""
        return None

    def parity(self, reference: Mapping[str, np.ndarray],
               candidate: Mapping[str, np.ndarray]) -> dict:
        """How closely an exported model (``candidate`` outputs) matches the Keras model
        (``reference``) on the same inputs, in the task's terms (a detector may compare boxes
        or mAP). Default: :func:`visionsuite.export.parity` (max / mean absolute difference
        per output, argmax agreement of the first)."""
        from visionsuite.export import parity

        return parity(reference, candidate)

    def sinks(self) -> list:
        """Extra :class:`~visionsuite.streams.sinks.Sink` s this task's configuration asks
        for (artefact writers such as mask PNGs); they run before the generic sinks, so a
        sink may add a key (e.g. the written file) to ``result.record``."""
        return []

    def open_source(self, spec, source_id: int = 0):
        """An unopened :class:`~visionsuite.streams.sources.Source` for ``spec`` (a
        ``--source`` of ``run`` or an input of ``predict``) when the task reads such inputs
        itself, else ``None`` (default: the engine's cameras, URLs, videos and images).

        ``run`` and ``predict`` ask this first and ``open()`` what it returns (a bad input
        fails there, in one line). Its frames' ``image`` may be any array the task's state
        takes (a ``(D, H, W, C)`` volume), and ``Frame.meta`` (e.g. the volume's affine) is
        merged into the ``meta`` the state's ``push`` receives."""
        return None


class ImageTask(Task):
    """Base of tasks on single RGB images: the shared image options
    (:class:`ImageTaskConfig`) and their Albumentations transforms, private to the task."""

    Config: ClassVar[type[TaskConfig]] = ImageTaskConfig

    def _train_transform(self, **compose_kwargs):
        """The training transform from the config's image options (jointly applied to
        ``mask`` / ``bboxes`` given through ``compose_kwargs``)."""
        from visionsuite.data import augment

        return augment.train_transform_for(self.config, **compose_kwargs)

    def _eval_transform(self, **compose_kwargs):
        from visionsuite.data import augment

        return augment.eval_transform(self.config.image_size, **compose_kwargs)
