"""The activity task (contract v2): video clips in, activity labels and events out.

``visionsuite train|evaluate|run|predict activity``. The model is one of the two video
classifiers of :mod:`visionsuite_tasks.activity.models`, on any registry backbone:

* ``mode="clip"`` -- :class:`~visionsuite_tasks.activity.models.ClipClassifier` (temporal
  shift + temporal convolutions) trained on TSN-sampled clips (``frames`` segments spanning
  each video);
* ``mode="streaming"`` -- the causal
  :class:`~visionsuite_tasks.activity.models.StreamingClassifier`, trained on ``frames``
  consecutive frames (dense sampling: the temporal scale it sees live).

Both take ``THWC`` clips ``(frames, image_size, image_size, 3)`` (RGB 0..255) and return one
named output, ``probabilities``; that clip model is what ``train`` saves, ``export`` writes
and ``evaluate`` scores, so export parity is checked on it like on any other task.

Streams. The per-source :class:`ActivityState` keeps a sliding window of ``frames`` frames and
hands the engine one clip every ``stride`` frames (the engine is unchanged: it runs the
exported clip model). For a streaming model the clip output is the probability at the
window's last frame, and because the model is causal with a receptive field of at most
``frames`` frames, it equals what the one-frame step model
(:meth:`StreamingClassifier.step_model`, carried state) gives at that frame: the clip in the
engine and the step in :meth:`ActivityTask.streamer` are two ways to compute the same numbers
(tests/test_task.py checks it). The engine path pays ``frames`` backbone passes per
prediction; the step path one per frame (``Streamer.from_tflite`` on
``export_step_tflite``'s file, one per source, ``reset()`` at end of input / reconnect) --
use it from Python where the cost matters.

Events. The state also holds an :class:`~visionsuite_tasks.activity.events.EventDetector`
(hysteresis ``event_on`` / ``event_off`` over ``event_min_frames`` predictions; labels in
``background`` never form events); every prediction carries the smoothed label and the
events that prediction closed, and ``--events FILE`` adds an
:class:`~visionsuite_tasks.activity.events.EventsSink` writing one JSON line per event
(including the events still open at the end of input). The state is dropped at the end of
input and on reconnect, so windows and detectors restart with the source.

Horizontal flips are off by default (``hflip=False``): they turn "moving left" into "moving
right" when classes depend on direction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite.files import write_json_atomic
from visionsuite.specs import InputSpec, OutputSpec
from visionsuite.streams.sinks import Sink
from visionsuite.task import REPORT_NAME, Dataset, Prediction, Task, TaskConfig, TaskOption

log = logging.getLogger(__name__)

MODES = ("clip", "streaming")
OUTPUT = "probabilities"
# dilations of the streaming model's causal temporal convolutions
DILATIONS = (1, 2)


@dataclasses.dataclass(frozen=True)
class ActivityConfig(TaskConfig):
    """Options of the activity task."""

    # (int) side of the square frames the model sees, in pixels
    image_size: int = 64
    # (int) clip length T (frames per model input)
    frames: int = 8
    # (str) "clip" (ClipClassifier, TSN sampling) or "streaming" (causal, dense sampling)
    mode: str = "streaming"
    # (int) channels of the temporal head
    width: int = 32
    # (int) channels of the motion branch (two-frame convolution on pixels); 0 = none
    motion_channels: int = 16
    # (str) spatial pooling of the streaming model: "mean" or "max"
    spatial_pool: str = "max"
    # (float) dropout before the classifier
    dropout: float = 0.2
    # (float) training augmentation strength in [0, 1] (same crop / colour for every frame)
    augment: float = 0.3
    # (bool) random horizontal flips while training (off: direction classes)
    hflip: bool = False
    # (bool) colour jitter while training
    color_jitter: bool = True
    # (int) streams: one clip (one prediction) every `stride` frames
    stride: int = 1
    # (int) labels per prediction in records
    top_k: int = 3
    # (float) events: score a label needs (as top label) to start an event
    event_on: float = 0.6
    # (float) events: score below which the active label counts as gone
    event_off: float = 0.4
    # (int) events: consecutive predictions needed to start, switch or end an event
    event_min_frames: int = 3
    # (str) events: comma-separated labels that never form events (e.g. "still")
    background: str = ""
    # (str) streams: a JSON-lines file to write one line per event into ("" = none)
    events: str = ""

    def __post_init__(self):
        rules = (
            (self.image_size >= 8, "image_size must be >= 8", "image_size"),
            (self.frames >= 1, "frames must be >= 1", "frames"),
            (self.mode in MODES, f"mode must be one of {MODES}", "mode"),
            (self.width >= 1, "width must be >= 1", "width"),
            (self.motion_channels >= 0, "motion_channels must be >= 0", "motion_channels"),
            (self.spatial_pool in ("mean", "max"), "spatial_pool must be mean or max",
             "spatial_pool"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)", "dropout"),
            (0.0 <= self.augment <= 1.0, "augment must be in [0, 1]", "augment"),
            (self.stride >= 1, "stride must be >= 1", "stride"),
            (self.top_k >= 1, "top_k must be >= 1", "top_k"),
            (0.0 <= self.event_off <= self.event_on <= 1.0,
             "need 0 <= event_off <= event_on <= 1", "event_on"),
            (self.event_min_frames >= 1, "event_min_frames must be >= 1", "event_min_frames"),
        )
        for ok, message, key in rules:
            if not ok:
                raise UsageError(f"{message}. Received: {key}={getattr(self, key)!r}")

    @property
    def background_labels(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.background.split(",") if s.strip())


@dataclasses.dataclass
class ActivityPrediction(Prediction):
    """One prediction of a stream or a clip.

    ``label`` / ``score``: the top class of this clip; ``top_k``: ``[{"label", "score"}]``;
    ``active``: the event detector's smoothed label (``None`` outside events);
    ``events``: events closed by this prediction (``Event.to_json()`` dicts);
    ``frames``: the frame indices of the clip (the prediction belongs to the last one);
    ``probabilities``: all class scores (for sinks; not written to records).
    """

    label: str = ""
    score: float = 0.0
    top_k: list = dataclasses.field(default_factory=list)
    active: str | None = None
    events: list = dataclasses.field(default_factory=list)
    frames: list = dataclasses.field(default_factory=list)
    probabilities: np.ndarray | None = None


def _state_class():
    from visionsuite.streams.state import ClipState

    class ActivityState(ClipState):
        """A :class:`~visionsuite.streams.state.ClipState` (window of ``frames`` frames, one
        clip every ``stride``) plus an event detector fed with every prediction."""

        def __init__(self, task, source, spec, classes, stride=1):
            super().__init__(task, source, spec, classes, stride=stride)
            from visionsuite_tasks.activity.events import EventDetector

            c = task.config
            self.detector = EventDetector(classes, on=c.event_on, off=c.event_off,
                                          min_frames=c.event_min_frames,
                                          background=c.background_labels, source=str(source))

        def merge(self, outputs, ctx):
            prediction = self.task.postprocess(outputs, ctx, self.classes)
            frame = int(ctx["frames"][-1]) if ctx.get("frames") else None
            closed = self.detector.update(prediction.probabilities, frame=frame,
                                          time=ctx.get("timestamp"))
            prediction.events = [e.to_json() for e in closed]
            prediction.active = self.detector.active
            return prediction

        def close(self):
            if 0 < self._count < self.spec.frames:  # e.g. `predict` on single images
                log.warning("%s: input ended after %d frame(s), fewer than one clip of %d: "
                            "no prediction (give a video, or a folder of its frames)",
                            self.source, self._count, self.spec.frames)
            self.detector.reset()

    return ActivityState


class ActivityTask(Task):
    """Video activity recognition: clip / streaming classifiers, events, stream states.

    See the module docstring for the modes and how streams are run.

    Args:
        config: an :class:`ActivityConfig` (``None``: defaults).

    Example:
        >>> task = ActivityTask(ActivityTask.Config(image_size=64, frames=8))
        >>> data = task.load_dataset("datasets/generated/motion", split="train")
        >>> model = task.build_model(build_backbone("simple_cnn", (64, 64, 3)), data.classes)
    """

    name = "activity"
    Config = ActivityConfig
    dataset_formats = {
        "folders": "root/[split/]<class>/<video file or folder of frames>",
        "csv": "manifest video,label[,start,end] (start / end in frames; end exclusive)",
    }
    keras_modules = ("visionsuite_tasks.activity.models",)
    options = (
        TaskOption("stride", "one prediction every N frames"),
        TaskOption("top_k", "labels per prediction"),
        TaskOption("event_on", "score that starts an event"),
        TaskOption("event_off", "score below which an event ends"),
        TaskOption("event_min_frames", "predictions needed to start / switch / end an event"),
        TaskOption("background", "comma-separated labels that never form events"),
        TaskOption("events", "write one JSON line per event into this file"),
    )

    # === Specs ===
    def input_spec(self) -> InputSpec:
        s = int(self.config.image_size)
        return InputSpec((int(self.config.frames), s, s, 3), "THWC", name="clip")

    def output_specs(self):
        return (OutputSpec(OUTPUT),)

    # === Data ===
    @property
    def sampling(self) -> str:
        return "dense" if self.config.mode == "streaming" else "tsn"

    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        from visionsuite_tasks.activity.clips import load_video_dataset

        min_frames = self.config.frames if self.sampling == "dense" else 1
        return load_video_dataset(path, split=split, format=format, strict=strict,
                                  classes=classes, min_frames=min_frames)

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        import tensorflow as tf

        from visionsuite.data.pipeline import make_tf_dataset
        from visionsuite_tasks.activity.clips import ClipLoader, clip_transform

        c = self.config
        loader = ClipLoader(c.frames, training=training, sampling=self.sampling, seed=seed)
        transform = clip_transform(c.frames, c.image_size, training=training,
                                   strength=c.augment, hflip=c.hflip,
                                   color_jitter=c.color_jitter)

        def to_arrays(outputs, sample):
            clip, label = loader.to_arrays(outputs, sample)
            return clip.astype(np.float32), np.int32(label)

        return make_tf_dataset(dataset, output_signature=(
            tf.TensorSpec(self.input_spec().shape, tf.float32), tf.TensorSpec((), tf.int32)),
            batch_size=batch_size, training=training, load=loader, transform=transform,
            to_arrays=to_arrays, seed=seed)

    def make_tiny_dataset(self, folder, classes):
        """Class folders of short mp4 clips: class ``i`` is a bright square moving with its
        own direction and speed over a noisy background."""
        import cv2

        folder = Path(folder)
        s, n = int(self.config.image_size), int(self.config.frames) + 4
        rng = np.random.default_rng(0)
        for i, name in enumerate(classes):
            (folder / name).mkdir(parents=True, exist_ok=True)
            angle = 2 * np.pi * i / max(len(classes), 1)
            for k in range(2):
                path = folder / name / f"{k:03d}.mp4"
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (s, s))
                for f in range(n):
                    img = rng.integers(0, 40, (s, s, 3), dtype=np.uint8)
                    r = (s // 2 - 4) * (f / max(n - 1, 1))
                    x, y = int(s / 2 + r * np.cos(angle)), int(s / 2 + r * np.sin(angle))
                    img[max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = 255
                    writer.write(img)
                writer.release()
        return folder

    # === Model ===
    def build_model(self, backbone, classes):
        from visionsuite_tasks.activity.models import build_video_classifier

        c = self.config
        head = dict(width=c.width, dropout=c.dropout, motion_channels=c.motion_channels)
        if c.mode == "streaming":
            head.update(dilations=DILATIONS, spatial_pool=c.spatial_pool)
            # kernel 3: 1 + 2 * sum(dilations) frames, one more with the motion branch
            rf = 1 + 2 * sum(DILATIONS) + (1 if c.motion_channels else 0)
            if rf > c.frames:  # windows shorter than that would differ from the step model
                raise UsageError(f"the streaming model sees {rf} frames; frames must be at "
                                 f"least that. Received: frames={c.frames}")
        if backbone is None:
            raise UsageError("the activity task needs a registry backbone for its frames. "
                             "Received: backbone=None")
        return build_video_classifier(c.mode, backbone, len(classes), frames=c.frames, **head)

    def loss(self, classes, dataset=None):
        return "sparse_categorical_crossentropy"

    def metrics(self, classes):
        return ["accuracy"]

    def evaluate(self, model, dataset: Dataset, out_dir=None, *, batch_size=32):
        """Clip accuracy, macro precision / recall / F1, per-class scores and the confusion
        matrix (scikit-learn). With ``out_dir``: ``evaluation.json`` and
        ``confusion_matrix.png``."""
        from visionsuite_tasks.classification import metrics as cls_metrics

        out = model.outputs[0] if not isinstance(model.output, dict) else model.output[OUTPUT]
        if int(out.shape[-1]) != len(dataset.classes):
            raise ModelError(f"the model has {int(out.shape[-1])} classes but the dataset "
                             f"has {len(dataset.classes)}. Received: {dataset.classes[:10]}")
        if not len(dataset):
            raise DataError("the evaluation dataset is empty. Received: 0 samples")
        ds = self.make_tf_dataset(dataset, batch_size=batch_size, training=False)
        raw = model.predict(ds.map(_features), verbose=0)
        probs = np.asarray(raw[OUTPUT] if isinstance(raw, dict) else raw)
        targets = np.array([s.target for s in dataset.samples])
        report = cls_metrics.classification_report(targets, probs, dataset.classes)
        report["mode"] = self.config.mode
        if out_dir is not None:
            out_dir = Path(out_dir)
            cls_metrics.plot_confusion_matrix(report["confusion_matrix"], dataset.classes,
                                              out_dir / "confusion_matrix.png")
            write_json_atomic(out_dir / REPORT_NAME, report)
        return {k: float(v) for k, v in report.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    # === Inference ===
    def new_state(self, source, spec, classes):
        if spec.layout != "THWC":
            raise ModelError(f"an activity model takes THWC clips. Received: layout="
                             f"{spec.layout}")
        return _state_class()(self, source, spec, classes, stride=self.config.stride)

    def postprocess(self, outputs, meta, classes):
        from visionsuite_tasks.activity.events import top_k

        if OUTPUT not in outputs:
            raise ModelError(f"an activity model has the output {OUTPUT!r}. Received: "
                             f"{sorted(outputs)}")
        p = np.asarray(outputs[OUTPUT], np.float32).reshape(-1)
        if p.size != len(classes):
            raise ModelError(f"the model output has {p.size} scores for {len(classes)} "
                             f"classes. Received: shape {np.shape(outputs[OUTPUT])}")
        best = int(p.argmax())
        return ActivityPrediction(list(classes), label=str(classes[best]), score=float(p[best]),
                                  top_k=top_k(p, classes, self.config.top_k),
                                  frames=[int(i) for i in meta.get("frames", [])],
                                  probabilities=p)

    def to_record(self, prediction: ActivityPrediction) -> dict:
        out = {"label": prediction.label, "score": round(prediction.score, 6),
               "top_k": prediction.top_k, "active": prediction.active,
               "events": prediction.events}
        if prediction.frames:
            out["clip_frames"] = [prediction.frames[0], prediction.frames[-1]]
        return out

    def summary(self, record: dict, limit: int = 200) -> str:
        return ", ".join(f"{r['label']} {r['score']:.3f}" for r in record["top_k"])

    def render(self, image_bgr, prediction: ActivityPrediction):
        from visionsuite_tasks.classification.render import draw_text_lines

        lines = [f"{prediction.label} {prediction.score:.2f}"]
        if prediction.active:
            lines.append(f"event: {prediction.active}")
        for e in prediction.events:
            lines.append(f"ended: {e['label']} {e['start_frame']}-{e['end_frame']}")
        return draw_text_lines(image_bgr, lines)

    def sinks(self) -> list:
        if not self.config.events:
            return []
        return [_LazyEventsSink(self.config.events, on=self.config.event_on,
                                off=self.config.event_off,
                                min_frames=self.config.event_min_frames,
                                background=self.config.background_labels)]

    # === Streaming step (Python) ===
    @staticmethod
    def streamer(model):
        """A :class:`~visionsuite_tasks.activity.models.Streamer` for a streaming model:
        a ``StreamingClassifier`` (Keras step) or the path of a step ``.tflite`` file
        (:func:`~visionsuite_tasks.activity.models.export_step_tflite`). One per source;
        ``reset()`` at the end of input or on reconnect."""
        from visionsuite_tasks.activity.models import StreamingClassifier, Streamer

        if isinstance(model, StreamingClassifier):
            return Streamer.from_keras(model)
        if isinstance(model, (str, Path)):
            return Streamer.from_tflite(model)
        raise UsageError(f"a streamer needs a StreamingClassifier or a step .tflite path. "
                         f"Received: {type(model).__name__}")


def _features(x, y):
    return x


def _lazy_events_sink_base():
    from visionsuite_tasks.activity.events import EventsSink

    return EventsSink


class _LazyEventsSink(Sink):
    """An :class:`~visionsuite_tasks.activity.events.EventsSink` whose classes come from the
    first prediction (``Task.sinks()`` is asked before the model's classes are known)."""

    needs_frame = False

    def __init__(self, path, **detector):
        from visionsuite_tasks.activity.events import EventDetector

        EventDetector(list(detector.get("background", ())) or ["x"], **{
            k: v for k, v in detector.items() if k != "background"})  # check options now
        self.path, self.detector = Path(path), detector
        self._sink = None

    @property
    def events(self) -> int:
        return self._sink.events if self._sink is not None else 0

    def write(self, result) -> None:
        if self._sink is None:
            self._sink = _lazy_events_sink_base()(self.path, result.prediction.classes,
                                                  **self.detector)
        self._sink.write(result)

    def close(self) -> None:
        if self._sink is None:  # no prediction: still leave an (empty) events file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
            return
        self._sink.close()
