"""Memory-bounded sliding-window inference over a volume: a tile generator plus a stitcher.

The volume ``(D, H, W[, C_in])`` is covered by windows of ``window = (d, h, w)`` voxels that
overlap by ``overlap`` (a fraction of the window); a volume smaller than the window along an
axis is padded with ``pad_value`` (the padded part of the output is discarded). Each tile's
output ``(d, h, w, C)`` is weighted by a Gaussian importance map (highest at the window's
centre, ``sigma = sigma_scale * window``, clamped below at ``min_weight`` so that volume
corners keep a usable weight) and accumulated; the result is ``sum(w * p) / sum(w)``.

Memory. Tiles come out in z-major order (the ``D`` axis outermost). Once a tile starting at
depth ``z`` arrives, no later tile touches depths ``< z``: those slices are finalised (divided
by the weights, then argmax or copied to the output) and their buffers reused. So the
accumulators span only one window of depth, never the whole volume:

    peak bytes ~ C * d * H * W * acc_bytes        (class accumulators, float32 or float16)
               + d * H * W * 4                    (weight sums, float32)
               + output                           (labels: D*H*W * 1 byte (2 if C > 255);
                                                   probabilities: D*H*W*C * out_bytes)
               + tile temporaries                 (input tile + output tile + weights, ~
                                                   d*h*w * (C_in + C + 2) * 4 per tile in flight)

:func:`peak_memory_bytes` returns this estimate; the tests check it with ``tracemalloc``.
Nothing of size ``C * D * H * W`` float32 is allocated unless you ask for the probabilities
themselves. For a 256^3 volume, 4 classes, 64^3 windows, float16 accumulators and label
output the estimate is 71 MiB (measured with tracemalloc: 70 MiB peak), against 256 MiB for a
single float32 ``C x D x H x W`` buffer.

Use from a stream state (push tiles out, merge outputs back, in order)::

    window = SlidingWindow((64, 64, 64), overlap=0.5)
    stitcher = window.stitcher(volume.shape, num_classes=2)
    for tile_input, tile in window.tiles(volume_dhwc):      # State.push: yield (tile_input, tile)
        stitcher.push(tile, model(tile_input[None])[0])    # State.merge: push the output back
    labels = stitcher.result()                              # (D, H, W) uint8, once stitcher.done

or all at once: :func:`sliding_window_inference`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from visionsuite.errors import DataError, UsageError

OUTPUTS = ("labels", "probabilities")


@dataclasses.dataclass(frozen=True)
class Tile:
    """One window position: where it sits in the volume and how much of it is inside.

    Args:
        index: position of this tile in generation order (0, 1, ...).
        start: ``(z, y, x)`` of the window's first voxel in the volume.
        size: extent of the window inside the volume (smaller than the window only where the
            volume itself is smaller than the window along that axis).
        flip: spatial axes (0, 1, 2 of the tile) flipped for test-time augmentation; the
            stitcher flips the output back.
    """

    index: int
    start: tuple[int, int, int]
    size: tuple[int, int, int]
    flip: tuple[int, ...] = ()

    @property
    def region(self) -> tuple[slice, slice, slice]:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.size))


def _starts(length: int, window: int, step: int) -> list[int]:
    """Window starts covering ``[0, length)``, evenly spread, first 0 and last length-window."""
    if length <= window:
        return [0]
    n = int(np.ceil((length - window) / step)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - window, n)})


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125,
                        min_weight: float = 1e-3) -> np.ndarray:
    """The ``(d, h, w)`` float32 importance map: separable Gaussian, max 1, floor ``min_weight``."""
    axes = []
    for n in window:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        sigma = max(sigma_scale * n, 1e-6)
        axes.append(np.exp(-0.5 * (x / sigma) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g /= g.max()
    return np.maximum(g, min_weight).astype(np.float32)


def peak_memory_bytes(shape: Sequence[int], window: Sequence[int], num_classes: int, *,
                      in_channels: int = 1, output: str = "labels", accumulate="float32",
                      output_dtype="float32", tiles_in_flight: int = 1) -> int:
    """Estimated peak bytes the stitcher and its tiles hold (see the module docstring)."""
    D, H, W = (int(v) for v in shape[:3])
    d, h, w = (min(int(a), int(b)) for a, b in zip(window, (D, H, W)))
    wd, wh, ww = (int(v) for v in window)
    acc = num_classes * d * H * W * np.dtype(accumulate).itemsize
    weights = d * H * W * 4
    if output == "labels":
        out = D * H * W * (1 if num_classes <= 255 else 2)
    else:
        out = D * H * W * num_classes * np.dtype(output_dtype).itemsize
    tile = wd * wh * ww * 4 * (in_channels + num_classes + 2) * max(1, tiles_in_flight)
    return int(acc + weights + out + tile)


class SlidingWindow:
    """Plans overlapping windows over a volume and makes stitchers for their outputs.

    Args:
        window: ``(d, h, w)`` voxels of one model input.
        overlap: fraction of the window shared by neighbours, in ``[0, 1)``.
        sigma_scale: Gaussian sigma as a fraction of the window (0.125: weights fall to
            ~3e-4 at the window's faces before the floor).
        min_weight: floor of the importance map (keeps every voxel's weight sum positive).
        pad_value: value of the padding where the volume is smaller than the window.
        flips: test-time flips: each entry is a tuple of spatial axes (0, 1, 2) to flip; every
            position is then also run flipped and the outputs are averaged.

    Example:
        >>> window = SlidingWindow((32, 32, 32), overlap=0.5)
        >>> len(window.positions((64, 64, 64)))
        27
    """

    def __init__(self, window: Sequence[int], overlap: float = 0.5, sigma_scale: float = 0.125,
                 min_weight: float = 1e-3, pad_value: float = 0.0,
                 flips: Sequence[Sequence[int]] = ()):
        window = tuple(int(v) for v in window)
        if len(window) != 3 or min(window) < 1:
            raise UsageError(f"window must be three positive sizes (d, h, w). "
                             f"Received: window={window}")
        if not 0.0 <= overlap < 1.0:
            raise UsageError(f"overlap must be in [0, 1). Received: overlap={overlap}")
        if sigma_scale <= 0 or not 0 < min_weight <= 1:
            raise UsageError(f"sigma_scale must be > 0 and min_weight in (0, 1]. Received: "
                             f"sigma_scale={sigma_scale}, min_weight={min_weight}")
        flips = tuple(tuple(sorted(int(a) for a in f)) for f in flips)
        if any(a not in (0, 1, 2) for f in flips for a in f):
            raise UsageError(f"flips name spatial axes 0, 1, 2. Received: flips={flips}")
        self.window, self.overlap, self.sigma_scale = window, float(overlap), float(sigma_scale)
        self.min_weight, self.pad_value, self.flips = float(min_weight), float(pad_value), flips
        self.steps = tuple(max(1, int(round(n * (1.0 - overlap)))) for n in window)
        self._importance = None

    def get_config(self) -> dict:
        return {"window": self.window, "overlap": self.overlap, "sigma_scale": self.sigma_scale,
                "min_weight": self.min_weight, "pad_value": self.pad_value,
                "flips": self.flips}

    @property
    def importance(self) -> np.ndarray:
        if self._importance is None:
            self._importance = gaussian_importance(self.window, self.sigma_scale,
                                                   self.min_weight)
        return self._importance

    def positions(self, shape: Sequence[int]) -> list[Tile]:
        """Every tile (z-major order; flipped variants follow their plain tile)."""
        shape = _spatial(shape)
        starts = [_starts(n, w, s) for n, w, s in zip(shape, self.window, self.steps)]
        tiles = []
        for z, y, x in itertools.product(*starts):
            start = (z, y, x)
            size = tuple(min(w, n - s) for w, n, s in zip(self.window, shape, start))
            for flip in ((),) + self.flips:
                tiles.append(Tile(len(tiles), start, size, flip))
        return tiles

    def tiles(self, volume: np.ndarray) -> Iterator[tuple[np.ndarray, Tile]]:
        """Yield ``(tile_input, tile)``: ``tile_input`` is ``(d, h, w, C_in)`` float32.

        ``volume`` is ``(D, H, W)`` or ``(D, H, W, C_in)`` (DHWC); tiles are fresh arrays, so
        the caller may batch or modify them.
        """
        volume = np.asarray(volume)
        if volume.ndim == 3:
            volume = volume[..., None]
        if volume.ndim != 4:
            raise DataError(f"sliding-window inference takes a (D, H, W[, C]) volume. "
                            f"Received: shape {volume.shape}")
        for tile in self.positions(volume.shape):
            out = np.full(self.window + (volume.shape[3],), self.pad_value, np.float32)
            d, h, w = tile.size
            out[:d, :h, :w] = volume[tile.region]
            if tile.flip:
                out = np.ascontiguousarray(np.flip(out, axis=tile.flip))
            yield out, tile

    def stitcher(self, shape: Sequence[int], num_classes: int, *, output: str = "labels",
                 accumulate="float32", output_dtype="float32",
                 threshold: float = 0.5) -> Stitcher:
        """A :class:`Stitcher` for a volume of spatial ``shape`` (see there)."""
        return Stitcher(self, _spatial(shape), num_classes, output=output,
                        accumulate=accumulate, output_dtype=output_dtype, threshold=threshold)


def _spatial(shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (3, 4) or min(shape[:3]) < 1:
        raise DataError(f"a volume shape is (D, H, W) or (D, H, W, C). Received: shape={shape}")
    return shape[:3]


class Stitcher:
    """Accumulates tile outputs (Gaussian-weighted) into labels or probabilities.

    Made by :meth:`SlidingWindow.stitcher`. Push every tile's output in the order
    :meth:`SlidingWindow.positions` / ``tiles`` produced them (a stream engine keeps that
    order); each push may finalise the slices no later tile reaches.

    Args:
        window: the :class:`SlidingWindow` that made the tiles.
        shape: spatial shape ``(D, H, W)`` of the volume.
        num_classes: channels of the model output. 1 means one sigmoid channel: labels are
            ``p > threshold``.
        output: ``"labels"`` (argmax, uint8 or uint16 ``(D, H, W)``) or ``"probabilities"``
            (``(D, H, W, C)`` in ``output_dtype``).
        accumulate: dtype of the class accumulators: ``"float32"`` or ``"float16"`` (half the
            memory; sums accurate to ~0.5 % relative, enough for argmax).
    """

    def __init__(self, window: SlidingWindow, shape: tuple[int, int, int], num_classes: int, *,
                 output: str = "labels", accumulate="float32", output_dtype="float32",
                 threshold: float = 0.5):
        if output not in OUTPUTS:
            raise UsageError(f"output must be one of {OUTPUTS}. Received: output={output!r}")
        if int(num_classes) < 1:
            raise UsageError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
        if np.dtype(accumulate) not in (np.float32, np.float16):
            raise UsageError(f"accumulate must be float32 or float16. "
                             f"Received: accumulate={accumulate!r}")
        self.window, self.shape, self.num_classes = window, shape, int(num_classes)
        self.output, self.threshold = output, float(threshold)
        self.tiles = window.positions(shape)
        D, H, W = shape
        depth = min(window.window[0], D)
        self._acc = np.zeros((self.num_classes, depth, H, W), np.dtype(accumulate))
        self._wsum = np.zeros((depth, H, W), np.float32)
        if output == "labels":
            self._out = np.zeros(shape, np.uint8 if self.num_classes <= 255 else np.uint16)
        else:
            self._out = np.zeros(shape + (self.num_classes,), np.dtype(output_dtype))
        self._base = 0  # first depth not yet finalised; buffer row 0 holds depth _base
        self._next = 0  # index of the next expected tile
        self.peak_bytes_estimate = peak_memory_bytes(
            shape, window.window, self.num_classes, output=output, accumulate=accumulate,
            output_dtype=output_dtype)

    @property
    def done(self) -> bool:
        return self._next == len(self.tiles)

    def push(self, tile: Tile, probabilities: np.ndarray) -> None:
        """Add one tile's output ``(d, h, w, C)`` (a leading batch axis of 1 is accepted)."""
        if self.done:
            raise UsageError(f"all {len(self.tiles)} tiles were already pushed. "
                             f"Received: tile {tile.index}")
        if tile != self.tiles[self._next]:
            raise UsageError(f"tiles must be pushed in the order they were generated; expected "
                             f"tile {self._next}. Received: tile {tile.index} at {tile.start}")
        p = np.asarray(probabilities)
        if p.ndim == 5 and p.shape[0] == 1:
            p = p[0]
        if p.ndim == 3 and self.num_classes == 1:
            p = p[..., None]
        expected = self.window.window + (self.num_classes,)
        if p.shape != expected:
            raise DataError(f"a tile output must be (d, h, w, classes) = {expected}. "
                            f"Received: shape {p.shape}")
        if tile.flip:
            p = np.flip(p, axis=tile.flip)
        z = tile.start[0]
        if z > self._base:
            self._finalise(z)
        d, h, w = tile.size
        g = self.window.importance[:d, :h, :w]
        rz = slice(z - self._base, z - self._base + d)
        ry, rx = tile.region[1], tile.region[2]
        self._wsum[rz, ry, rx] += g
        for c in range(self.num_classes):
            self._acc[c, rz, ry, rx] += (p[:d, :h, :w, c] * g).astype(self._acc.dtype, copy=False)
        self._next += 1
        if self.done:
            self._finalise(self.shape[0])

    def _finalise(self, upto: int) -> None:
        """Write depths ``[_base, upto)`` to the output and slide the buffers down."""
        n = upto - self._base
        for t in range(n):
            probs = self._acc[:, t].astype(np.float32) / self._wsum[t][None]
            z = self._base + t
            if self.output == "probabilities":
                self._out[z] = np.moveaxis(probs, 0, -1)
            elif self.num_classes == 1:
                self._out[z] = probs[0] > self.threshold
            else:
                self._out[z] = np.argmax(probs, axis=0)
        depth = self._acc.shape[1]
        keep = depth - n
        for t in range(max(keep, 0)):  # forward copy, one slice at a time: no big temporary
            self._acc[:, t] = self._acc[:, t + n]
            self._wsum[t] = self._wsum[t + n]
        self._acc[:, max(keep, 0):] = 0
        self._wsum[max(keep, 0):] = 0
        self._base = upto

    def result(self) -> np.ndarray:
        """Labels ``(D, H, W)`` or probabilities ``(D, H, W, C)``, once every tile is in."""
        if not self.done:
            raise UsageError(f"{len(self.tiles) - self._next} of {len(self.tiles)} tiles are "
                             f"still missing. Received: {self._next} tiles")
        return self._out


def sliding_window_inference(volume: np.ndarray, predict: Callable[[np.ndarray], np.ndarray],
                             window: SlidingWindow, num_classes: int, *, batch_size: int = 1,
                             output: str = "labels", accumulate="float32",
                             output_dtype="float32") -> np.ndarray:
    """Run ``predict`` (batch ``(N, d, h, w, C_in)`` -> ``(N, d, h, w, C)``) over ``volume``.

    Returns labels ``(D, H, W)`` or probabilities ``(D, H, W, C)`` (see :class:`Stitcher`).
    """
    volume = np.asarray(volume)
    stitcher = window.stitcher(volume.shape, num_classes, output=output, accumulate=accumulate,
                               output_dtype=output_dtype)
    batch: list[tuple[np.ndarray, Tile]] = []

    def flush():
        outputs = np.asarray(predict(np.stack([b[0] for b in batch])))
        if outputs.shape[0] != len(batch):
            raise DataError(f"predict returned {outputs.shape[0]} outputs for {len(batch)} "
                            f"tiles. Received: shape {outputs.shape}")
        for (_, tile), out in zip(batch, outputs):
            stitcher.push(tile, out)
        batch.clear()

    for item in window.tiles(volume):
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return stitcher.result()


def largest_component(labels: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """Keep, for each foreground class, only its largest connected component (26-connected).

    Args:
        labels: integer labels ``(D, H, W)`` (0 = background).
        classes: which classes to clean (default: every non-zero class present).
    Returns:
        a copy in which removed voxels are background.
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    out = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for c in (classes if classes is not None else [int(v) for v in np.unique(labels) if v]):
        comp, n = ndimage.label(labels == c, structure=structure)
        if n > 1:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            out[(comp != int(np.argmax(sizes))) & (comp > 0)] = 0
    return out


def predict_volume(volume, predict: Callable[[np.ndarray], np.ndarray], window: SlidingWindow,
                   num_classes: int, *, spacing: Sequence[float] | None = None,
                   canonical: bool = True, normalise: Callable[[np.ndarray], np.ndarray] | None
                   = None, batch_size: int = 1, accumulate="float32"):
    """Labels for a whole :class:`~visionsuite_tasks.medical.volume.Volume`, on its own grid.

    The volume is brought to the grid the model was trained on (RAS when ``canonical``, then
    ``spacing`` mm when given; image interpolation linear), normalised (``normalise(array)``),
    run by sliding window, and the labels are mapped back (nearest) onto the input's exact
    shape and affine.

    Returns:
        a uint8 (uint16 for > 255 classes) label Volume with the input's shape and affine.
    """
    from visionsuite_tasks.medical import preprocess

    work = preprocess.to_canonical(volume) if canonical else volume
    if spacing is not None:
        work = preprocess.resample_to_spacing(work, spacing, order=1)
    array = work.to_dhwc()
    if normalise is not None:
        array = np.asarray(normalise(array), np.float32)
    labels = sliding_window_inference(array, predict, window, num_classes,
                                      batch_size=batch_size, accumulate=accumulate)
    on_grid = work.with_array(labels)
    return preprocess.resample_like(on_grid, volume, order=0)
