"""From per-frame (or per-window) class probabilities to labelled events.

:class:`EventDetector` applies hysteresis to a stream of probability vectors: a label
*starts* once it is the top label with a score >= ``on`` for ``min_frames`` consecutive
updates (the event starts at the first of them), and *ends* after ``min_frames``
consecutive updates below ``off`` or when another label has won that way (the event ends at
its last update at or above ``off``). Its :attr:`~EventDetector.active` label is also the
smoothed per-frame label (a label must win for ``min_frames`` frames before it is shown).
Labels listed in ``background`` (e.g. "still", "none") never form events.

:class:`EventsSink` is a stream sink (``visionsuite.streams.sinks.Sink``) that runs one
detector per source and writes one JSON line per event::

    {"source": "cam0", "label": "wave", "start_frame": 120, "end_frame": 161,
     "start_time": 4.8, "end_time": 6.44, "score": 0.97, "frames": 42}

Open events are closed when their source restarts (frame index going back: reconnect) and when
the sink is closed (end of input, Ctrl-C). :func:`detect_events` does the same offline for an
``(N, K)`` array, and :func:`segment_precision_recall` scores detected events against
ground-truth segments at a temporal IoU threshold (0.5 by default).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import UsageError
from visionsuite.streams.sinks import Sink


@dataclasses.dataclass(frozen=True)
class Event:
    """One detected action segment (frames inclusive; times in seconds or ``None``)."""

    label: str
    start_frame: int
    end_frame: int
    start_time: float | None
    end_time: float | None
    score: float  # peak probability of the label inside the event
    source: str = ""

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def to_json(self) -> dict:
        rnd = (lambda v: None if v is None else round(float(v), 6))
        out = {"label": self.label, "start_frame": int(self.start_frame),
               "end_frame": int(self.end_frame), "start_time": rnd(self.start_time),
               "end_time": rnd(self.end_time), "score": round(float(self.score), 6),
               "frames": self.frames}
        return {"source": self.source, **out} if self.source else out


def top_k(probabilities, classes: Sequence[str], k: int = 5) -> list[dict]:
    """``[{"label", "score"}]`` of the ``k`` best classes, best first."""
    p = np.asarray(probabilities, np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return [{"label": classes[i], "score": round(float(p[i]), 6)} for i in order]


class EventDetector:
    """Hysteresis on class probabilities: smoothed per-frame label and closed events.

    Args:
        classes: class names, in the order of the probability vectors.
        on: score a label needs (as the top label) to start an event.
        off: score below which an active label counts as gone.
        min_frames: consecutive updates needed to start, to switch and to end (k).
        background: labels that never form events.
        fps: frames per second, for event times when ``update`` gets no time.
        source: name written into the events.

    Example:
        >>> det = EventDetector(["walk", "wave"], on=0.6, off=0.4, min_frames=3, fps=25)
        >>> for i, p in enumerate(probabilities):
        ...     for event in det.update(p, frame=i):
        ...         print(event.to_json())
        >>> closing = det.flush()   # end of input
    """

    def __init__(self, classes: Sequence[str], *, on: float = 0.6, off: float = 0.4,
                 min_frames: int = 3, background: Iterable[str] = (), fps: float | None = None,
                 source: str = ""):
        if not 0.0 <= off <= on <= 1.0:
            raise UsageError(f"need 0 <= off <= on <= 1. Received: on={on!r}, off={off!r}")
        if int(min_frames) < 1:
            raise UsageError(f"min_frames must be >= 1. Received: min_frames={min_frames!r}")
        unknown = [b for b in background if b not in classes]
        if unknown:
            raise UsageError(f"background labels must be classes. Received: {unknown}")
        self.classes = list(classes)
        self.on, self.off, self.min_frames = float(on), float(off), int(min_frames)
        self.background = {self.classes.index(b) for b in background}
        self.fps = fps
        self.source = source
        self.reset()

    def reset(self) -> None:
        """Forget everything (open events are dropped; call :meth:`flush` first to keep them)."""
        self._active: int | None = None
        self._start = self._last_good = None      # (frame, time) of the active event
        self._peak = 0.0
        self._below = 0
        self._cand: int | None = None
        self._cand_n = 0
        self._cand_start = None
        self._cand_peak = 0.0
        self._frame = -1
        self._score = 0.0

    @property
    def active(self) -> str | None:
        """The smoothed label (the open event's), or ``None``."""
        return None if self._active is None else self.classes[self._active]

    @property
    def active_score(self) -> float:
        """The active label's score at the last update (0 when none)."""
        return self._score if self._active is not None else 0.0

    def _time(self, frame, time):
        if time is not None:
            return float(time)
        return frame / self.fps if self.fps else None

    def _close(self) -> Event:
        (f0, t0), (f1, t1) = self._start, self._last_good
        event = Event(self.classes[self._active], f0, f1, t0, t1, self._peak, self.source)
        self._active, self._below = None, 0
        return event

    def update(self, probabilities, frame: int | None = None,
               time: float | None = None) -> list[Event]:
        """Feed one probability vector (frame index default: previous + 1); returns the
        events this update closed (zero, or one; a switch closes one and opens another)."""
        p = np.asarray(probabilities, np.float64).reshape(-1)
        if p.shape[0] != len(self.classes):
            raise UsageError(f"expected {len(self.classes)} class probabilities. "
                             f"Received: shape {np.shape(probabilities)}")
        frame = self._frame + 1 if frame is None else int(frame)
        self._frame = frame
        stamp = (frame, self._time(frame, time))
        top = int(np.argmax(p))
        score = float(p[top])
        closed: list[Event] = []
        # Candidate run: the same non-background top label at or above `on`.
        if score >= self.on and top not in self.background and top != self._active:
            if self._cand == top:
                self._cand_n += 1
                self._cand_peak = max(self._cand_peak, score)
            else:
                self._cand, self._cand_n, self._cand_start, self._cand_peak = top, 1, stamp, score
        else:
            self._cand, self._cand_n = None, 0
        if self._active is not None:
            s = float(p[self._active])
            self._score = s
            if s >= self.off:
                self._below = 0
                self._last_good = stamp
                self._peak = max(self._peak, s)
            else:
                self._below += 1
            if self._below >= self.min_frames or self._cand_n >= self.min_frames:
                closed.append(self._close())
        if self._active is None and self._cand_n >= self.min_frames:
            self._active, self._start, self._last_good = self._cand, self._cand_start, stamp
            self._peak, self._below, self._score = self._cand_peak, 0, float(p[self._cand])
            self._cand, self._cand_n = None, 0
        return closed

    def flush(self) -> list[Event]:
        """Close the open event (end of input); the detector is reset."""
        out = [self._close()] if self._active is not None else []
        self.reset()
        return out


def detect_events(probabilities, classes: Sequence[str], *, frames: Sequence[int] | None = None,
                  fps: float | None = None, **kwargs) -> list[Event]:
    """Events of a whole ``(N, K)`` probability array (offline, e.g. dense windows over an
    untrimmed video; ``frames`` gives each row's frame index, default ``0..N-1``)."""
    probs = np.asarray(probabilities)
    if probs.ndim != 2:
        raise UsageError(f"probabilities must be (N, classes). Received: shape {probs.shape}")
    det = EventDetector(classes, fps=fps, **kwargs)
    frames = range(len(probs)) if frames is None else frames
    events = [e for p, f in zip(probs, frames) for e in det.update(p, frame=f)]
    return events + det.flush()


def temporal_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two inclusive frame ranges."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    union = max(a[1], b[1]) - min(a[0], b[0]) + 1
    return max(0, inter) / union if union > 0 else 0.0


def segment_precision_recall(predicted: Sequence[Event], truth: Sequence[tuple[str, int, int]],
                             iou: float = 0.5) -> dict[str, float]:
    """Segment-level precision / recall: a predicted event is a true positive when it has
    the label of a not yet matched ground-truth segment ``(label, start, end)`` with temporal
    IoU >= ``iou`` (greedy, highest-scoring events first)."""
    used = set()
    tp = 0
    for ev in sorted(predicted, key=lambda e: -e.score):
        best, best_j = 0.0, None
        for j, (label, s, e) in enumerate(truth):
            if j in used or label != ev.label:
                continue
            v = temporal_iou((ev.start_frame, ev.end_frame), (s, e))
            if v > best:
                best, best_j = v, j
        if best_j is not None and best >= iou:
            used.add(best_j)
            tp += 1
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    return {"precision": precision, "recall": recall, "true_positives": float(tp)}


def _default_probabilities(result):
    return result.prediction.probabilities


class EventsSink(Sink):
    """Stream sink writing one JSON line per detected event (see the module docstring).

    Args:
        path: the JSON-lines file to write (each line flushed as written).
        classes: class names of the probability vectors.
        probabilities: ``probabilities(stream_result) -> (K,)`` (default:
            ``result.prediction.probabilities``).
        **detector: :class:`EventDetector` options (``on``, ``off``, ``min_frames``,
            ``background``, ``fps``).
    """

    needs_frame = False

    def __init__(self, path: str | Path, classes: Sequence[str], *,
                 probabilities: Callable = _default_probabilities, **detector):
        EventDetector(classes, **detector)  # check the options now, not on the first frame
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.classes = list(classes)
        self._detector_kwargs = detector
        self._probabilities = probabilities
        self._detectors: dict[int, EventDetector] = {}
        self._last: dict[int, int] = {}
        self._file = open(self.path, "w", encoding="utf-8")
        self.events = 0

    def _emit(self, events):
        for ev in events:
            self._file.write(json.dumps(ev.to_json()) + "\n")
            self.events += 1
        if events:
            self._file.flush()

    def write(self, result) -> None:
        sid = result.source_id
        det = self._detectors.get(sid)
        if det is None:
            det = self._detectors[sid] = EventDetector(self.classes, source=result.source,
                                                       **self._detector_kwargs)
        if sid in self._last and result.index <= self._last[sid]:   # restarted source
            self._emit(det.flush())
        self._last[sid] = result.index
        time = result.timestamp if not self._detector_kwargs.get("fps") else None
        self._emit(det.update(self._probabilities(result), frame=result.index, time=time))

    def close(self) -> None:
        if self._file.closed:
            return
        for sid in sorted(self._detectors):
            self._emit(self._detectors[sid].flush())
        self._file.close()
