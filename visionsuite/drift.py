"""Drift monitoring: are the live inputs and predictions still like the training data?

A *reference* (JSON) summarises data the model was trained or evaluated on:

* image statistics per image -- brightness (mean grey level), contrast (grey standard
  deviation), sharpness (log variance of the Laplacian), computed on the image scaled to a
  longest side of 256 px so that resolution does not count -- kept as decile bin edges and
  the reference share of each bin;
* colour histograms: the share of pixels in 8 intensity bins per R, G, B channel;
* the label distribution (class shares) when labels are known.

:class:`DriftSink` (``visionsuite run ... --drift REF``) keeps one sliding window of the
newest ``window`` frames per source and compares it with the reference by the population
stability index, PSI = sum_i (q_i - p_i) ln(q_i / p_i) (p: reference shares, q: window shares;
0.1 is commonly read as a moderate shift, 0.25 as a large one). When a statistic's PSI exceeds
``threshold``, it raises an alarm -- a JSON line with the source, the frame range of the window,
the statistic and its PSI -- at most once per window per source; the run's stats get the
alarms and the largest PSI seen per statistic. Predicted labels are read from the task's
record key ``label`` (classification) or ``dominant`` (segmentation).

Example:
    >>> ref = build_reference(read_image(p) for p in paths)      # RGB uint8 images
    >>> ref.save("drift_reference.json")
    >>> sink = DriftSink(DriftReference.load("drift_reference.json"), log="alarms.jsonl")
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite.streams.sinks import Sink

SCALAR_STATS = ("brightness", "contrast", "sharpness")
CHANNELS = ("red", "green", "blue")
COLOUR_BINS = 8
# bin edges at the reference mean + k scales; the scale is the reference standard deviation,
# at least this floor (a visible change: ~8 grey levels, a 30% change of Laplacian variance)
EDGE_SIGMAS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
SCALE_FLOOR = {"brightness": 8.0, "contrast": 5.0, "sharpness": 0.3}
LABEL_KEYS = ("label", "dominant")
# share of the reference mixed into a window's bin shares (see `psi`)
PRIOR = 0.5
EPS = 1e-4
REFERENCE_VERSION = 1


def image_stats(image: np.ndarray, order: str = "RGB") -> dict:
    """Statistics of one uint8 ``(H, W, 3)`` image (``order``: "RGB" or "BGR")."""
    import cv2

    h, w = image.shape[:2]
    scale = 256.0 / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    rgb = image[..., ::-1] if order == "BGR" else image
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    hist = [np.bincount((rgb[..., c] // (256 // COLOUR_BINS)).ravel(),
                        minlength=COLOUR_BINS) / grey.size for c in range(3)]
    return {"brightness": float(grey.mean()), "contrast": float(grey.std()),
            "sharpness": float(math.log1p(lap.var())),
            "colour": np.concatenate(hist).astype(np.float64)}


def psi(expected: np.ndarray, observed: np.ndarray, prior: float = 0.0) -> float:
    """Population stability index of ``observed`` shares against ``expected`` shares.

    ``prior`` in [0, 1) mixes that much of ``expected`` into ``observed`` first: a window of
    consecutive, correlated frames fills few bins, and an empty bin alone would otherwise
    read as a large shift.
    """
    p = np.clip(np.asarray(expected, np.float64), EPS, None)
    q = np.asarray(observed, np.float64)
    q = np.clip((1 - prior) * q / max(q.sum(), EPS) + prior * p / p.sum(), EPS, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(values: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    idx = np.searchsorted(np.asarray(edges), np.asarray(values), side="right")
    return np.bincount(idx, minlength=len(edges) + 1) / max(len(values), 1)


@dataclasses.dataclass
class DriftReference:
    """What the reference data looked like (see the module docstring).

    Args:
        edges: per scalar statistic, the inner bin edges (reference deciles).
        shares: per scalar statistic, the reference share of each bin.
        colour: the reference colour histogram (3 x 8 shares, R then G then B).
        labels: class name -> share of the reference labels (empty when unknown).
        images: how many images the reference summarises.
    """

    edges: dict
    shares: dict
    colour: list
    labels: dict = dataclasses.field(default_factory=dict)
    images: int = 0
    version: int = REFERENCE_VERSION

    def save(self, path: str | Path) -> Path:
        from visionsuite.files import write_json_atomic

        path = Path(path)
        write_json_atomic(path, dataclasses.asdict(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DriftReference":
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"drift reference not found (write one with `visionsuite "
                             f"drift-reference` or train a model: runs/.../drift_reference.json). "
                             f"Received: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ref = cls(**{k: v for k, v in data.items()
                         if k in {f.name for f in dataclasses.fields(cls)}})
            missing = [s for s in SCALAR_STATS if s not in ref.edges or s not in ref.shares]
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a drift reference ({exc}). Received: {path}") from exc
        if missing or len(ref.colour) != 3 * COLOUR_BINS:
            raise DataError(f"{path}: not a drift reference (missing {missing or 'colour'}). "
                            f"Received: {path}")
        return ref


def build_reference(images: Iterable[np.ndarray], labels: Iterable[str] | None = None,
                    order: str = "RGB") -> DriftReference:
    """A reference from uint8 images (and their labels, if known)."""
    stats = [image_stats(img, order) for img in images]
    if len(stats) < 10:
        raise DataError(f"a drift reference needs at least 10 images. Received: {len(stats)}")
    edges, shares = {}, {}
    for name in SCALAR_STATS:
        values = np.array([s[name] for s in stats])
        scale = max(float(values.std()), SCALE_FLOOR[name])
        inner = float(values.mean()) + scale * np.asarray(EDGE_SIGMAS)
        edges[name] = [float(v) for v in inner]
        shares[name] = [float(v) for v in _shares(values, inner)]
    colour = np.mean([s["colour"] for s in stats], axis=0)
    label_shares = {}
    if labels is not None:
        counts = collections.Counter(str(lab) for lab in labels)
        total = sum(counts.values())
        label_shares = {k: v / total for k, v in sorted(counts.items())} if total else {}
    return DriftReference(edges, shares, [float(v) for v in colour], label_shares, len(stats))


def video_reference(path: str | Path, max_frames: int | None = None,
                    vid_stride: int = 1) -> DriftReference:
    """A reference (image statistics only) from the frames of a video file or image folder."""
    from visionsuite.streams.sources import open_source

    import threading

    source = open_source(str(path), 0, vid_stride=vid_stride)
    frames = []
    try:
        for frame in source.frames(threading.Event()):
            frames.append(frame.image)
            if max_frames is not None and len(frames) >= max_frames:
                break
    finally:
        source.close()
    return build_reference(frames, order="BGR")


class _Window:
    """The newest frames' statistics of one source."""

    def __init__(self, size: int):
        self.stats: collections.deque = collections.deque(maxlen=size)
        self.labels: collections.deque = collections.deque(maxlen=size)
        self.frames: collections.deque = collections.deque(maxlen=size)
        self.last_alarm_frame: int | None = None
        self.seen = 0


class DriftSink(Sink):
    """Compares each source's newest ``window`` frames with a reference; alarms on PSI.

    Args:
        reference: the :class:`DriftReference`.
        window: frames per window (per source).
        threshold: PSI above which a statistic raises an alarm.
        log: JSON-lines file for the alarms (``None``: keep them in :meth:`summary` only).
        every: compute the PSIs every ``every`` frames once the window is full.

    Example:
        >>> sink = DriftSink(DriftReference.load("ref.json"), window=30, threshold=0.5)
        >>> stream = run("classification", "clip.mp4", sinks=[sink]); list(stream)
        >>> sink.summary()["alarms"]
    """

    needs_frame = False
    needs_input = True

    def __init__(self, reference: DriftReference, window: int = 30, threshold: float = 0.5,
                 log: str | Path | None = None, every: int = 1):
        if window < 10:
            raise UsageError(f"the drift window must hold at least 10 frames. "
                             f"Received: window={window}")
        if threshold <= 0:
            raise UsageError(f"the drift threshold must be > 0. Received: threshold={threshold}")
        self.reference = reference
        self.window = int(window)
        self.threshold = float(threshold)
        self.every = max(1, int(every))
        self.alarms: list[dict] = []
        self.max_psi: dict[str, float] = {}
        self._windows: dict[int, _Window] = {}
        self._names: dict[int, str] = {}
        self.log_path = Path(log) if log else None
        self._log = None
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w", encoding="utf-8")

    def write(self, result) -> None:
        image = getattr(result, "input", None)
        if image is None:
            return
        win = self._windows.setdefault(result.source_id, _Window(self.window))
        self._names[result.source_id] = result.source
        win.stats.append(image_stats(image, order="BGR"))
        record = result.record or {}
        win.labels.append(next((record[k] for k in LABEL_KEYS if record.get(k) is not None),
                               None))
        win.frames.append(result.index)
        win.seen += 1
        if len(win.stats) < self.window or win.seen % self.every:
            return
        scores = self.scores(win)
        for name, value in scores.items():
            self.max_psi[name] = max(self.max_psi.get(name, 0.0), value)
        over = {k: v for k, v in scores.items() if v > self.threshold}
        if over and (win.last_alarm_frame is None or win.frames[0] > win.last_alarm_frame):
            worst = max(over, key=over.get)
            alarm = {"event": "drift", "source": result.source,
                     "first_frame": int(win.frames[0]), "last_frame": int(win.frames[-1]),
                     "statistic": worst, "psi": round(over[worst], 4),
                     "threshold": self.threshold,
                     "over": {k: round(v, 4) for k, v in sorted(over.items())}}
            self.alarms.append(alarm)
            win.last_alarm_frame = int(win.frames[-1])
            if self._log:
                self._log.write(json.dumps(alarm) + "\n")
                self._log.flush()

    def scores(self, win: _Window) -> dict[str, float]:
        """PSI per statistic of one window against the reference."""
        ref = self.reference
        out = {}
        for name in SCALAR_STATS:
            values = [s[name] for s in win.stats]
            out[name] = psi(ref.shares[name], _shares(values, ref.edges[name]), PRIOR)
        colour = np.mean([s["colour"] for s in win.stats], axis=0)
        ref_colour = np.asarray(ref.colour)
        out["colour"] = max(psi(ref_colour[c * COLOUR_BINS:(c + 1) * COLOUR_BINS],
                                colour[c * COLOUR_BINS:(c + 1) * COLOUR_BINS])
                            for c in range(3))
        labels = [lab for lab in win.labels if lab is not None]
        if ref.labels and labels:
            names = sorted(set(ref.labels) | set(labels))
            counts = collections.Counter(labels)
            out["labels"] = psi([ref.labels.get(n, 0.0) for n in names],
                                [counts[n] / len(labels) for n in names], PRIOR)
        return out

    def summary(self) -> dict:
        return {"window": self.window, "threshold": self.threshold,
                "reference_images": self.reference.images,
                "max_psi": {k: round(v, 4) for k, v in sorted(self.max_psi.items())},
                "alarms": list(self.alarms)}

    def close(self) -> None:
        if self._log and not self._log.closed:
            self._log.close()


def dataset_reference(dataset, spec=None, limit: int = 200, seed: int = 0) -> DriftReference | None:
    """A reference from up to ``limit`` images of a :class:`~visionsuite.task.Dataset`
    (evenly spread, seeded), with its label distribution when targets are class indices.
    ``None`` for inputs that are not RGB images (volumes, clips, spectrograms)."""
    from visionsuite.data.images import read_image

    if spec is not None and (spec.layout != "HWC" or spec.channels != 3):
        return None
    samples = list(dataset.samples)
    if len(samples) > limit:
        rng = np.random.default_rng(seed)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), limit, replace=False))]
    images, labels = [], []
    for sample in samples:
        image = sample.image
        if isinstance(image, (str, Path)):
            image = read_image(image)
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            return None
        images.append(image)
        target = sample.target
        if isinstance(target, (int, np.integer)) and 0 <= int(target) < len(dataset.classes):
            labels.append(dataset.classes[int(target)])
    if len(images) < 10:
        return None
    return build_reference(images, labels if len(labels) == len(images) else None)
