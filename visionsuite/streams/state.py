"""Per-source state of a stream: how incoming frames become model inputs, and model outputs
become predictions.

The stream engine asks the task for one :class:`State` per source when the source opens
(``task.new_state(source, spec, classes)``) and drops it at the end of input and whenever the
source reconnects; the task object itself stays stateless. In the engine::

    for frame in source:
        for model_input, ctx in state.push(frame_bgr, meta):     # preprocess thread
            outputs = runtime(model_input)                      # {name: array}, every runtime
            prediction = state.merge(outputs, ctx)              # postprocess thread
            if prediction is not None: render ctx["frame"] + sinks

``push`` is called from one thread and ``merge`` from another, each in frame order.

* :class:`FrameState` -- one frame, one input, one prediction (classification, segmentation,
  detection); it carries temporal smoothing of named outputs (an EMA), reset with the state.
* :class:`ClipState` -- a window of ``T`` frames (``THWC`` input), one input every ``stride``
  frames; no frame is dropped inside a window (the engine applies its drop policy to
  assembled inputs only, see :attr:`State.frame_drops`).
* :class:`TiledState` -- one large image or volume, many tiles, one stitched prediction.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from visionsuite.errors import UsageError
from visionsuite.specs import InputSpec


def to_model_input(task, frame_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, dict]:
    """``task.preprocess`` of an OpenCV BGR frame. The base preprocessing (resize + cast)
    treats the channels alike, so it resizes the BGR frame and swaps the channels of the small
    uint8 image before the cast, instead of converting the full frame first (same numbers;
    swapping the float32 channels instead cost 4 ms a frame at 512 px)."""
    import cv2

    from visionsuite.task import Task, resize_to_spec

    frame_spec = spec if spec.layout == "HWC" else InputSpec.image(
        spec.spatial, spec.channels, dtype=spec.dtype)
    if type(task).preprocess is Task.preprocess and frame_bgr.ndim == 3 \
            and frame_bgr.shape[2] == 3:
        small = cv2.cvtColor(resize_to_spec(frame_bgr, frame_spec), cv2.COLOR_BGR2RGB)
        h, w = frame_bgr.shape[:2]
        return small.astype(np.dtype(spec.dtype)), {"height": h, "width": w}

    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB) if frame_bgr.ndim == 3 else frame_bgr
    x, meta = task.preprocess(rgb, frame_spec)
    return np.asarray(x, np.dtype(spec.dtype)), meta


class State:
    """The per-source state of one stream (see the module docstring).

    Args:
        task: the task whose ``preprocess`` / ``postprocess`` the state calls.
        source: a stable id of the source (file path, masked URL, camera index).
        spec: the model's input spec.
        classes: the model's class names.
    """

    # (bool) whether the engine may drop incoming frames before ``push`` (newest-frame
    # policy of live sources); windowed states say False: no frame is lost inside a window
    frame_drops: bool = True
    # (bool) whether the engine may drop assembled inputs (whole frames or clips); tiles of
    # one item are never dropped
    input_drops: bool = True

    def __init__(self, task, source: str, spec: InputSpec, classes: Sequence[str]):
        self.task = task
        self.source = str(source)
        self.spec = spec
        self.classes = list(classes)

    def push(self, frame_bgr: np.ndarray, meta: dict) -> Iterator[tuple[np.ndarray, dict]]:
        """Zero or more ``(model input, ctx)`` for one incoming frame; ``meta`` holds
        ``source``, ``frame`` (index) and ``timestamp``; ``ctx`` comes back to :meth:`merge`."""
        raise NotImplementedError

    def merge(self, outputs: Mapping[str, np.ndarray], ctx: dict):
        """The prediction for ``ctx`` from one input's ``{name: array}``, or ``None`` while
        more outputs are needed (tiles)."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once when the engine drops the state (end of input, reconnect), after the
        last ``push``; outputs of earlier pushes may still be merging."""


class FrameState(State):
    """One frame -> one input -> one prediction, with optional temporal smoothing.

    Args:
        smooth: ``{output name: weight of the past}`` -- an exponential moving average of
            those outputs across the frames of this source (e.g. class probabilities), in
            ``[0, 1)``; the average restarts when the output's shape changes. Names the
            model does not output are skipped (a task may name the low-resolution output of
            a fast model variant and the full-resolution one of others).
    """

    def __init__(self, task, source, spec, classes, smooth: Mapping[str, float] | None = None):
        super().__init__(task, source, spec, classes)
        self.smooth = {k: float(v) for k, v in (smooth or {}).items() if v}
        for name, weight in self.smooth.items():
            if not 0.0 <= weight < 1.0:
                raise UsageError(f"smoothing weights must be in [0, 1). Received: "
                                 f"{name}={weight}")
        self._ema: dict[str, np.ndarray] = {}

    def push(self, frame_bgr, meta):
        x, pre = to_model_input(self.task, frame_bgr, self.spec)
        yield x, dict(pre, **meta)

    def merge(self, outputs, ctx):
        if self.smooth:
            outputs = dict(outputs)
            for name, s in self.smooth.items():
                if name not in outputs:
                    continue
                value = np.asarray(outputs[name], np.float32)
                prev = self._ema.get(name)
                if prev is not None and prev.shape == value.shape:
                    value = s * prev + (1.0 - s) * value
                self._ema[name] = value
                outputs[name] = value
        return self.task.postprocess(outputs, ctx, self.classes)


class ClipState(State):
    """A sliding window of ``T = spec.frames`` preprocessed frames; one ``THWC`` input every
    ``stride`` frames once the window is full. ``ctx["frames"]`` lists the frame indices in
    the window (the prediction belongs to the last one)."""

    frame_drops = False

    def __init__(self, task, source, spec, classes, stride: int = 1):
        super().__init__(task, source, spec, classes)
        if spec.layout != "THWC":
            raise UsageError(f"a clip state needs a THWC input. Received: layout={spec.layout}")
        if int(stride) < 1:
            raise UsageError(f"stride must be >= 1. Received: stride={stride}")
        self.stride = int(stride)
        self._window: collections.deque = collections.deque(maxlen=spec.frames)
        self._count = 0

    def push(self, frame_bgr, meta):
        x, pre = to_model_input(self.task, frame_bgr, self.spec)
        self._window.append((x, meta.get("frame", self._count)))
        self._count += 1
        full = len(self._window) == self.spec.frames
        if full and (self._count - self.spec.frames) % self.stride == 0:
            clip = np.stack([f for f, _ in self._window])
            yield clip, dict(pre, **meta, frames=[i for _, i in self._window])

    def merge(self, outputs, ctx):
        return self.task.postprocess(outputs, ctx, self.classes)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``size`` with at least ``overlap``
    (fraction) between neighbours; the last tile ends at ``size`` exactly."""
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


class TiledState(State):
    """One image or volume larger than the model input -> overlapping tiles -> one stitched
    prediction. Every output is averaged over the tiles covering each position (outputs
    with the tile's spatial shape are stitched; others are averaged over tiles).

    The incoming item (``push``'s first argument) is the whole ``(H, W, C)`` image or
    ``(D, H, W, C)`` volume, already in the model's channels and value range (tasks that read
    volumes give their source's arrays as they are). Memory: one float32 accumulator per
    stitched output of the item's size plus one weight map, never a buffer per tile.

    Args:
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.
    """

    frame_drops = False
    input_drops = False

    def __init__(self, task, source, spec, classes, overlap: float = 0.25):
        super().__init__(task, source, spec, classes)
        if not 0.0 <= overlap < 1.0:
            raise UsageError(f"overlap must be in [0, 1). Received: overlap={overlap}")
        self.overlap = float(overlap)
        self._acc: dict[str, np.ndarray] = {}
        self._other: dict[str, list] = {}
        self._weight: np.ndarray | None = None

    def push(self, item, meta):
        item = np.asarray(item, np.dtype(self.spec.dtype))
        tile = self.spec.shape[:-1]
        if item.ndim != len(self.spec.shape):
            raise UsageError(f"a tiled {self.spec.layout} state needs items of "
                             f"{len(self.spec.shape)} axes. Received: shape={item.shape}")
        pad = [(0, max(0, t - s)) for t, s in zip(tile, item.shape[:-1])] + [(0, 0)]
        full_shape = item.shape[:-1]
        if any(after for _, after in pad):  # smaller than one tile: pad, crop back in merge
            item = np.pad(item, pad, mode="edge")
        axes = [tile_starts(s, t, self.overlap) for s, t in zip(item.shape[:-1], tile)]
        corners = list(itertools.product(*axes))
        self._acc, self._other, self._weight = {}, {}, np.zeros(item.shape[:-1], np.float32)
        for k, corner in enumerate(corners):
            where = tuple(slice(c, c + t) for c, t in zip(corner, tile))
            ctx = dict(meta, tile=k, tiles=len(corners), where=where, padded=item.shape[:-1],
                       shape=full_shape)
            yield item[where], ctx

    def merge(self, outputs, ctx):
        where, tile = ctx["where"], self.spec.shape[:-1]
        for name, value in outputs.items():
            value = np.asarray(value, np.float32)
            if value.shape[: len(tile)] == tuple(tile):
                if name not in self._acc:
                    self._acc[name] = np.zeros(tuple(ctx["padded"]) + value.shape[len(tile):],
                                               np.float32)
                self._acc[name][where] += value
            else:
                self._other.setdefault(name, []).append(value)
        self._weight[where] += 1.0
        if ctx["tile"] < ctx["tiles"] - 1:
            return None
        crop = tuple(slice(0, s) for s in ctx["shape"])
        weight = self._weight[crop]
        stitched = {}
        for name, acc in self._acc.items():
            w = weight.reshape(weight.shape + (1,) * (acc.ndim - weight.ndim))
            stitched[name] = acc[crop] / w
        for name, values in self._other.items():
            stitched[name] = np.mean(values, axis=0)
        self._acc, self._other = {}, {}
        meta = {k: v for k, v in ctx.items() if k not in ("tile", "tiles", "where", "padded")}
        return self.task.postprocess(stitched, meta, self.classes)
