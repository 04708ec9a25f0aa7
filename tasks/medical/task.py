"""The medical imaging task: 3D segmentation of NIfTI / DICOM volumes with exact geometry.

``visionsuite predict medical scan.nii.gz --out DIR --mask-dir DIR`` and
``visionsuite run medical --source DICOM_FOLDER --mask-dir DIR`` read volumes through the
task's own source (:meth:`MedicalTask.open_source`), bring each to the model's grid (RAS, then
either the whole volume resampled to the model input -- ``grid="resize"``, the default model --
or sliding windows at ``spacing`` mm -- ``grid="window"``), normalise intensities (a CT window
preset or an MR normalisation), stitch the windows with Gaussian weights and map the labels
back onto the input's exact grid; the NIfTI sink writes them with the input's affine.

Datasets are case tables (:mod:`~visionsuite_tasks.medical.cases`): a CSV ``image,label,patient``
or a folder ``images/`` + ``labels/``; ``--split train|val|test`` are patient-grouped splits
(``val_fraction``, ``test_fraction``, ``split_seed``). Class names come from ``classes.txt``
beside the table (one per line, background first), else ``background, foreground``.

The default model is deepbrain's brain extraction for T1 MRI (:mod:`.pretrained`), run as a
SavedModel (LiteRT has no 3D max pooling, so it does not export to TFLite).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite.specs import InputSpec, OutputSpec
from visionsuite.task import REPORT_NAME, Dataset, Prediction, Sample, Task, TaskConfig, TaskOption

log = logging.getLogger("visionsuite")

GRIDS = ("window", "resize")
NORMALIZATIONS = ("percentile", "max", "zscore", "none")
DEFAULT_CLASSES = ("background", "foreground")


@dataclasses.dataclass(frozen=True)
class MedicalConfig(TaskConfig):
    """Options of the medical task."""

    # (int) side of the model's cubic input (one window), in voxels
    image_size: int = 64
    # (int) channels of a volume (MR sequences / CT: 1)
    channels: int = 1
    # (str) "window": sliding windows at `spacing`; "resize": the whole volume resampled to
    # the model input (one window; deepbrain)
    grid: str = "window"
    # (float) isotropic voxel size in mm the volume is resampled to (0: keep the voxels)
    spacing: float = 0.0
    # (str) CT window preset (brain, subdural, stroke, lung, mediastinum, abdomen, liver,
    # bone) mapping HU to [0, 1]; empty: use `normalize`
    window: str = ""
    # (str) intensity normalisation when no window: percentile (0.5-99.5 -> 0..1), max
    # (divide by the maximum), zscore, none
    normalize: str = "percentile"
    # (float) fraction of a window shared with its neighbours
    overlap: float = 0.5
    # (float) probability above which a voxel is foreground (one-channel sigmoid models)
    threshold: float = 0.5
    # (bool) keep only the largest connected component of each class
    largest_component: bool = False
    # (str) which DICOM series to read from a folder holding several (empty: the only one)
    series_uid: str = ""
    # (str) folder for the predicted NIfTI label volumes (empty: none written)
    mask_dir: str = ""
    # (bool) with mask_dir, also write the orthogonal-slice overlay PNG
    overlay: bool = True
    # (int) channels of the 3D U-Net's first level (doubled per level)
    width: int = 8
    # (int) levels of the 3D U-Net (the input side must be a multiple of 2**(levels-1))
    levels: int = 3
    # (int) patches drawn from each case per epoch
    patches_per_case: int = 2
    # (float) fraction of patches centred on a labelled voxel
    positive_fraction: float = 0.5
    # (bool) 3D augmentation (flips, small affine, intensity) while training
    augment: bool = True
    # (float) fraction of patients in the validation split
    val_fraction: float = 0.2
    # (float) fraction of patients in the test split
    test_fraction: float = 0.0
    # (int) seed of the patient-grouped split
    split_seed: int = 0

    def __post_init__(self):
        rules = (
            (self.image_size >= 8, "image_size must be >= 8", "image_size"),
            (self.grid in GRIDS, f"grid must be one of {', '.join(GRIDS)}", "grid"),
            (self.normalize in NORMALIZATIONS,
             f"normalize must be one of {', '.join(NORMALIZATIONS)}", "normalize"),
            (0.0 <= self.overlap < 1.0, "overlap must be in [0, 1)", "overlap"),
            (0.0 < self.threshold < 1.0, "threshold must be in (0, 1)", "threshold"),
            (self.spacing >= 0, "spacing must be >= 0 (0: keep the voxels)", "spacing"),
            (self.levels >= 1 and self.image_size % 2 ** (self.levels - 1) == 0,
             "image_size must be a multiple of 2**(levels-1)", "image_size"),
            (0.0 <= self.val_fraction < 1 and 0.0 <= self.test_fraction < 1,
             "val_fraction and test_fraction must be in [0, 1)", "val_fraction"),
        )
        for ok, message, key in rules:
            if not ok:
                raise UsageError(f"{message}. Received: {key}={getattr(self, key)!r}")
        if self.window:
            from visionsuite_tasks.medical.preprocess import WINDOW_PRESETS

            if self.window not in WINDOW_PRESETS:
                raise UsageError(f"window must be one of {', '.join(WINDOW_PRESETS)} (or empty)."
                                 f" Received: window={self.window!r}")


@dataclasses.dataclass
class MedicalPrediction(Prediction):
    """Labels of one volume on the input's grid, with per-class volumes."""

    # (list) shape of the label volume (the input's)
    shape: list = dataclasses.field(default_factory=list)
    # (list) voxel size in mm
    spacing: list = dataclasses.field(default_factory=list)
    # (dict) class -> volume in millilitres (foreground classes)
    volumes_ml: dict = dataclasses.field(default_factory=dict)
    # (str) source the volume came from
    path: str = ""
    # (np.ndarray) uint8 labels (D, H, W) on the input's grid
    labels: np.ndarray | None = None
    # (np.ndarray) the input's 4x4 RAS+ affine
    affine: np.ndarray | None = None


class MedicalTask(Task):
    """3D segmentation of medical volumes (NIfTI, DICOM) with exact geometry.

    Args:
        config: :class:`MedicalConfig` (window, normalisation, overlap, grid, ...).

    Example:
        >>> task = MedicalTask(MedicalConfig(image_size=64, window="abdomen"))
        >>> data = task.load_dataset("cases.csv", split="train")
        >>> model = task.build_model(None, data.classes)
    """

    name = "medical"
    Config = MedicalConfig
    dataset_formats = {
        "csv": "case table: image,label,patient (NIfTI files or DICOM series folders)",
        "folder": "images/ and labels/ (or imagesTr/, labelsTr/) matched by case id, "
                  "optional patients.csv and classes.txt",
    }
    keras_modules = ("visionsuite_tasks.medical.models",)
    options = (
        TaskOption("window", "CT window preset (brain, lung, bone, abdomen, ...)"),
        TaskOption("normalize", "MR normalisation: percentile, max, zscore, none"),
        TaskOption("overlap", "fraction of a sliding window shared with its neighbours"),
        TaskOption("spacing", "resample to this isotropic voxel size in mm (0: keep)"),
        TaskOption("grid", "window (sliding windows) or resize (whole volume to the input)"),
        TaskOption("threshold", "foreground probability threshold (one-channel models)"),
        TaskOption("largest_component", "keep the largest connected component per class"),
        TaskOption("series_uid", "the DICOM series to read from a folder holding several"),
        TaskOption("mask_dir", "folder for the NIfTI label volumes"),
        TaskOption("overlay", "with --mask-dir, also write the orthogonal-slice PNG"),
    )

    # === Specs ===
    def input_spec(self) -> InputSpec:
        s = int(self.config.image_size)
        return InputSpec((s, s, s, int(self.config.channels)), "DHWC", value_range=(0.0, 1.0),
                         divisor=2 ** (int(self.config.levels) - 1))

    def output_specs(self):
        s = int(self.config.image_size)
        return (OutputSpec("probabilities", (s, s, s, None)),)

    # === Sources, state, sinks ===
    def open_source(self, spec, source_id: int = 0):
        """A :class:`~visionsuite_tasks.medical.stream.VolumeSource` for NIfTI / DICOM files
        and folders; ``None`` for anything else (the engine's own sources)."""
        from visionsuite_tasks.medical.stream import VolumeSource, claims

        return VolumeSource(spec, source_id, series_uid=self.config.series_uid or None) \
            if claims(spec) else None

    def new_state(self, source, spec, classes):
        from visionsuite_tasks.medical.stream import VolumeState

        if spec.layout != "DHWC":
            raise UsageError(f"the medical task runs DHWC volume models. Received: "
                             f"{spec.describe()}")
        return VolumeState(self, source, spec, classes, overlap=self.config.overlap)

    def sinks(self) -> list:
        from visionsuite_tasks.medical.stream import NiftiSink

        return [NiftiSink(self.config.mask_dir, self.config.overlay)] if self.config.mask_dir \
            else []

    # === Preprocessing (shared by the stream, training and evaluation) ===
    def normalise(self, array: np.ndarray) -> np.ndarray:
        """Intensities to the model's range: the CT ``window`` or the MR ``normalize``."""
        from visionsuite_tasks.medical import preprocess

        a = np.asarray(array, np.float32)
        if self.config.window:
            return preprocess.window(a, self.config.window)
        if self.config.normalize == "percentile":
            return preprocess.normalize_percentile(a)
        if self.config.normalize == "max":
            peak = float(a.max()) if a.size else 0.0
            return a / peak if np.isfinite(peak) and peak > 0 else np.zeros_like(a)
        if self.config.normalize == "zscore":
            return preprocess.zscore(a)
        return a

    def prepare(self, volume, spec: InputSpec | None = None):
        """``(work grid Volume, (D, H, W, C) float32 model input)`` of a volume: RAS, then
        the model input's shape (``grid="resize"``) or ``spacing`` mm, then normalised."""
        from visionsuite_tasks.medical import preprocess

        spec = spec or self.input_spec()
        work = preprocess.to_canonical(volume.with_array(np.asarray(volume.array, np.float32)))
        if self.config.grid == "resize":
            work = preprocess.resample_to_shape(work, spec.shape[:3], order=1)
        elif self.config.spacing > 0:
            work = preprocess.resample_to_spacing(work, (self.config.spacing,) * 3, order=1)
        array = self.normalise(work.to_dhwc())
        if array.shape[-1] != spec.channels:
            raise DataError(f"the model takes {spec.channels}-channel volumes. Received: "
                            f"{array.shape[-1]} channels{' from ' + volume.source if volume.source else ''}")
        return work, array

    def _prepare_case(self, sample: Sample, spec: InputSpec):
        from visionsuite_tasks.medical import preprocess
        from visionsuite_tasks.medical.readers import read_case

        image, label = read_case(sample.image, sample.target)
        work, array = self.prepare(image, spec)
        lab = preprocess.resample_like(label.with_array(np.asarray(label.array, np.int32)),
                                       work, order=0)
        return image, label, work, array, np.asarray(lab.array, np.int32)

    # === Data ===
    def load_dataset(self, path, *, split=None, format=None, strict=False, classes=None):
        from visionsuite_tasks.medical.cases import CaseTable

        path = Path(path)
        table = CaseTable.read(path)
        if split not in (None, "", "all"):
            parts = table.split(self.config.val_fraction, self.config.test_fraction,
                                self.config.split_seed)
            if split not in parts:
                raise UsageError(f"split must be one of {', '.join(parts)} (patient-grouped; "
                                 f"set val_fraction/test_fraction). Received: split={split!r}")
            table = parts[split]
        names = list(classes) if classes else self._classes_of(path)
        samples, skipped = [], []
        for case in table:
            if case.label is None:
                reason = "no label"
                if strict:
                    raise DataError(f"case {case.case_id} has no label. Received: {case.image}")
                skipped.append((str(case.image), reason))
                continue
            samples.append(Sample(str(case.image), str(case.label), case.case_id))
        return Dataset(names, samples, skipped)

    @staticmethod
    def _classes_of(path: Path) -> list[str]:
        folder = path if path.is_dir() else path.parent
        file = folder / "classes.txt"
        if file.is_file():
            names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
            if len(names) >= 2:
                return names
        return list(DEFAULT_CLASSES)

    def make_tiny_dataset(self, folder, classes):
        from visionsuite_tasks.medical.synthetic import write_sphere_cases

        # one window per case keeps the check quick (the stream check tiles a larger volume)
        side = max(int(self.config.image_size), 16)
        folder = write_sphere_cases(folder, n_cases=4, size=side, n_patients=2)
        (Path(folder) / "classes.txt").write_text("\n".join(classes) + "\n")
        return Path(folder)

    def make_tf_dataset(self, dataset, *, batch_size, training, seed=0):
        """Patches of the input's size: ``patches_per_case`` per case (a
        ``positive_fraction`` centred on labels), 3D-augmented when ``training``; the whole
        resampled volume for ``grid="resize"``. Cases are read as they are needed."""
        import itertools

        import tensorflow as tf

        from visionsuite_tasks.medical import preprocess

        spec = self.input_spec()
        size = spec.shape[:3]
        epochs = itertools.count()
        samples = list(dataset.samples)
        n = 1 if self.config.grid == "resize" else int(self.config.patches_per_case)

        def generate():
            epoch = next(epochs) if training else 0
            rng = np.random.default_rng([seed, epoch])
            augment = preprocess.Augment3D(seed=int(rng.integers(2**31))) \
                if training and self.config.augment else None
            order = rng.permutation(len(samples)) if training else range(len(samples))
            for i in order:
                *_, array, lab = self._prepare_case(samples[i], spec)
                if self.config.grid == "resize":
                    images, labels = array[None], lab[None]
                else:
                    images, labels, _ = preprocess.sample_patches(
                        array, lab, size, n, positive_fraction=self.config.positive_fraction,
                        rng=np.random.default_rng([seed, epoch, int(i)]))
                for img, y in zip(images, labels):
                    if augment is not None:
                        img, y = augment(img, y)
                    yield np.asarray(img, np.float32), np.asarray(y, np.int32)

        ds = tf.data.Dataset.from_generator(generate, output_signature=(
            tf.TensorSpec(spec.shape, tf.float32), tf.TensorSpec(size, tf.int32)))
        # a known length: the trainer's steps per epoch (and its LR schedule) follow it
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(samples) * n))
        return ds.batch(batch_size).prefetch(2)

    # === Model ===
    def build_model(self, backbone, classes):
        """A residual 3D U-Net (:func:`~visionsuite_tasks.medical.models.build_unet3d`) with
        instance normalisation. The 2D registry backbones do not apply to volumes: a given
        ``backbone`` is ignored (with a warning)."""
        from visionsuite_tasks.medical.models import build_unet3d

        if backbone is not None:
            log.warning("medical: the 3D U-Net has its own encoder; the 2D backbone %s is "
                        "ignored", getattr(getattr(backbone, "spec", None), "name", backbone))
        levels = int(self.config.levels)
        widths = tuple(int(self.config.width) * 2 ** i for i in range(levels))
        return build_unet3d(self.input_spec().shape, len(classes), widths=widths,
                            blocks=(1,) * levels, norm="instance")

    def loss(self, classes, dataset=None):
        from visionsuite_tasks.medical.models import DiceCELoss

        return DiceCELoss()

    # === Evaluation ===
    def segment(self, volume, predict, spec: InputSpec | None = None, batch_size: int = 1):
        """Labels of ``volume`` on its own grid (uint8 Volume): the stream's path without the
        engine, ``predict(batch) -> probabilities``."""
        from visionsuite_tasks.medical import preprocess
        from visionsuite_tasks.medical.inference import SlidingWindow, Stitcher

        spec = spec or self.input_spec()
        work, array = self.prepare(volume, spec)
        window = SlidingWindow(spec.shape[:3], overlap=self.config.overlap)
        stitcher: Stitcher | None = None
        tiles = list(window.positions(array.shape))
        inputs = window.tiles(array)
        for start in range(0, len(tiles), batch_size):
            chunk = [next(inputs) for _ in tiles[start:start + batch_size]]
            out = predict(np.stack([c[0] for c in chunk]))
            if stitcher is None:
                stitcher = window.stitcher(work.shape, num_classes=out.shape[-1],
                                           threshold=self.config.threshold)
            for (_, tile), p in zip(chunk, out):
                stitcher.push(tile, p)
        labels = stitcher.result()
        if self.config.largest_component:
            from visionsuite_tasks.medical.inference import largest_component

            labels = largest_component(labels)
        return preprocess.resample_like(work.with_array(labels), volume, order=0)

    def evaluate(self, model, dataset, out_dir=None, *, batch_size=2):
        """Dice, IoU, HD95 and ASD (mm) per class and case on whole volumes (sliding window
        on each case's own grid); ``evaluation.json`` holds per-case and per-class numbers."""
        from visionsuite.files import write_json_atomic
        from visionsuite_tasks.medical.metrics import case_metrics

        spec = self.input_spec()

        def predict(batch):
            out = model(batch, training=False) if hasattr(model, "layers") else model(batch)
            if isinstance(out, Mapping):
                out = out["probabilities"]
            return np.asarray(out, np.float32)

        classes = list(dataset.classes)
        per_case = []
        for sample in dataset.samples:
            image, label, *_ = self._prepare_case(sample, spec)
            pred = self.segment(image, predict, spec, batch_size)
            scores = case_metrics(pred.array, np.asarray(label.array), image.spacing, classes)
            per_case.append({"case": sample.source, "classes": scores})
        per_class = {}
        for c in classes[1:]:
            values = {k: [case["classes"][c][k] for case in per_case]
                      for k in ("dice", "iou", "hd95_mm", "asd_mm")}
            per_class[c] = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                            for k, v in values.items()}
        dices = [v["dice"] for v in per_class.values() if np.isfinite(v["dice"])]
        scores = {"mean_dice": float(np.mean(dices)) if dices else float("nan"),
                  "num_samples": len(dataset)}
        for c, v in per_class.items():
            scores[f"dice/{c}"] = v["dice"]
            scores[f"hd95_mm/{c}"] = v["hd95_mm"]
        if out_dir is not None:
            report = dict(scores, per_class=per_class, per_case=per_case, classes=classes)
            write_json_atomic(Path(out_dir) / REPORT_NAME, _finite(report), sort_keys=True)
        return scores

    # === Inference ===
    def default_model(self):
        """deepbrain brain extraction (T1 MRI, 128^3 input, value range 0..1) as a SavedModel
        with visionsuite metadata, built once into the cache (see :mod:`.pretrained`)."""
        from visionsuite_tasks.medical.pretrained import default_model_path

        return str(default_model_path())

    def postprocess(self, outputs, meta, classes):
        """``{"labels": (D, H, W)}`` (stitched by the state) or ``{"probabilities": (D, H, W,
        C)}`` of one whole volume -> labels, per-class volumes in ml (``meta["affine"]``)."""
        if "labels" in outputs:
            labels = np.asarray(outputs["labels"])
        else:
            p = np.asarray(outputs["probabilities"], np.float32)
            labels = (p[..., 0] > self.config.threshold) if p.shape[-1] == 1 else p.argmax(-1)
        labels = labels.astype(np.uint8 if len(classes) <= 256 else np.uint16)
        if self.config.largest_component:
            from visionsuite_tasks.medical.inference import largest_component

            labels = largest_component(labels)
        affine = np.asarray(meta.get("affine", np.eye(4)), np.float64)
        spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
        counts = np.bincount(labels.ravel(), minlength=len(classes))
        volumes = {str(c): round(float(counts[i]) * voxel_ml, 3)
                   for i, c in enumerate(classes) if i > 0}
        return MedicalPrediction(list(classes), shape=list(labels.shape),
                                 spacing=[round(float(s), 4) for s in spacing],
                                 volumes_ml=volumes, path=str(meta.get("path", "")),
                                 labels=labels, affine=affine)

    def to_record(self, prediction):
        return {"shape": prediction.shape, "spacing": prediction.spacing,
                "volumes_ml": prediction.volumes_ml}

    def summary(self, record, limit=200):
        vols = ", ".join(f"{k} {v:.1f} ml" for k, v in record.get("volumes_ml", {}).items())
        text = f"{'x'.join(map(str, record.get('shape', [])))} voxels; {vols}"
        if record.get("mask"):
            text += f"; mask {record['mask']}"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def render(self, image_bgr, prediction):
        """A volume (the engine hands the whole ``(D, H, W, C)`` item): its orthogonal slices
        with the labels overlaid (BGR uint8). A 2D frame: returned unchanged (a copy)."""
        image = np.asarray(image_bgr)
        labels = getattr(prediction, "labels", None)
        if image.ndim == 4 and labels is not None and image.shape[:3] == labels.shape:
            from visionsuite_tasks.medical.render import orthogonal_slices
            from visionsuite_tasks.medical.volume import Volume

            affine = prediction.affine if prediction.affine is not None else np.eye(4)
            return orthogonal_slices(Volume(image[..., 0], affine), Volume(labels, affine))
        return image.copy()


def _finite(value):
    """NaN / inf -> None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
