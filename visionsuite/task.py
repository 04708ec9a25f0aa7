"""The task-plugin contract: what a domain team implements to add a task to visionsuite.

A task is one class, registered in its package's ``pyproject.toml``::

    [project.entry-points."visionsuite.tasks"]
    segmentation = "visionsuite_tasks.segmentation:SegmentationTask"

Everything generic -- the training loop, checkpoints, precision, distribution, streams,
export and the CLI -- lives in the core and works for every task. The task supplies what is
specific to it: how to read its datasets, augment them, build a model head on a backbone,
score it, and turn raw model outputs into predictions that can be drawn and logged.

Conventions shared by every task and the core:

* Images are ``uint8`` RGB arrays of shape ``(H, W, 3)``; video frames from OpenCV are BGR and
  the core converts them before ``preprocess``.
* Models take float32 RGB pixels in ``[0, 255]`` at a fixed ``(size, size, 3)``; the
  normalisation the backbone's weights expect is a layer inside the model, built from the
  backbone's :class:`~visionsuite.backbones.registry.Preprocessing` spec. Exported models
  (SavedModel, TFLite) therefore need no preprocessing numbers beside them.
* A trained model carries :class:`~visionsuite.metadata.ModelMetadata` (task name, class
  names, input size, backbone) so that it can be run with no other flags.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Options common to every task. A task subclasses this (frozen) to add its own."""

    # (int) side of the square model input, in pixels
    image_size: int = 224


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

    def __init__(self, config: TaskConfig | None = None):
        self.config = config if config is not None else self.Config()

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
    def train_transforms(self):
        """Albumentations ``Compose`` applied to training samples (jointly to targets)."""

    @abc.abstractmethod
    def eval_transforms(self):
        """Albumentations ``Compose`` applied to evaluation / prediction samples."""

    @abc.abstractmethod
    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        """A batched ``tf.data.Dataset`` of ``(images, targets)`` ready for ``fit``; when
        ``training``, shuffled and augmented reproducibly from ``seed``."""

    # === Model ===
    @abc.abstractmethod
    def build_model(self, backbone, classes: Sequence[str]):
        """Put the task's head on ``backbone`` (a :class:`~visionsuite.backbones.Backbone`)
        and return a ``keras.Model`` taking RGB pixels in [0, 255]."""

    @abc.abstractmethod
    def loss(self, classes: Sequence[str], dataset: Dataset | None = None):
        """The Keras loss. ``dataset`` is the training set, for class weights."""

    @abc.abstractmethod
    def metrics(self, classes: Sequence[str]) -> list:
        """Keras metrics reported during ``fit``."""

    @abc.abstractmethod
    def evaluate(self, model, dataset: Dataset, out_dir: Path | None = None, *,
                 batch_size: int = 32) -> dict[str, float]:
        """Score ``model`` over the whole dataset; write plots to ``out_dir`` if given."""

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

    def preprocess(self, image_rgb: np.ndarray, input_size: int) -> tuple[np.ndarray, dict]:
        """Turn one RGB uint8 image into a model input (float32, ``(size, size, 3)``)."""
        import cv2

        h, w = image_rgb.shape[:2]
        x = cv2.resize(image_rgb, (input_size, input_size), interpolation=cv2.INTER_AREA)
        return x.astype(np.float32), {"height": h, "width": w}

    @abc.abstractmethod
    def postprocess(self, raw: np.ndarray, meta: dict, classes: Sequence[str]) -> Prediction:
        """Turn one raw model output (no batch axis) into a :class:`Prediction`.

        ``meta`` is the dict :meth:`preprocess` returned; the stream engine and ``predict``
        add ``source`` (a stable id of the input: file path, URL, camera index) and
        ``frame`` (the frame index) when they know them, so that a task can keep per-stream
        state (e.g. temporal smoothing) and name per-frame outputs.
        """

    @abc.abstractmethod
    def render(self, image_bgr: np.ndarray, prediction: Prediction) -> np.ndarray:
        """Draw ``prediction`` on a BGR frame (returns a new frame)."""

    @abc.abstractmethod
    def to_record(self, prediction: Prediction) -> dict:
        """A JSON-serialisable dict for one prediction (one line of a results file)."""
