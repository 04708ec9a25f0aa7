"""Preprocessing of volumes: orientation, resampling, intensity windows and normalisation,
foreground crops, patch sampling and 3D augmentation.

Geometry-changing functions take and return :class:`~visionsuite_tasks.medical.volume.Volume`
and update the affine exactly, so that every result can be mapped back onto the original grid
(:func:`resample_like` with the original volume as reference; :func:`reorient` back to the
original axis codes). Intensity functions work on plain arrays.

Interpolation: images linear (``order=1``) or cubic (``order=3``), labels nearest
(``order=0``) -- :func:`resample_to_spacing` picks nearest automatically for integer arrays
unless told otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical.volume import Volume

# CT windows (width, level) in HU: standard radiology presets.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "subdural": (200.0, 75.0),
    "stroke": (40.0, 40.0),
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "abdomen": (400.0, 50.0),
    "liver": (150.0, 30.0),
    "bone": (1800.0, 400.0),
}


# ------------------------------------------------------------------ orientation
def reorient(volume: Volume, axcodes: str = "RAS") -> Volume:
    """The same image with its voxel axes permuted/flipped so that they point along ``axcodes``.

    Exact: only axis permutations and flips (no interpolation); the affine changes so that
    every voxel keeps its world position. ``reorient(reorient(v, "RAS"), v.orientation)``
    gives back ``v``'s array and affine.
    """
    from nibabel import orientations as ornt

    axcodes = str(axcodes).upper()
    pairs = [next((i for i, p in enumerate(("LR", "AP", "SI")) if c in p), None) for c in axcodes]
    if len(axcodes) != 3 or None in pairs or len(set(pairs)) != 3:
        raise UsageError(f"axcodes must name three different axes from L/R, A/P, S/I, e.g. "
                         f"'RAS' or 'LPS'. Received: axcodes={axcodes!r}")
    current = ornt.io_orientation(volume.affine)
    target = ornt.axcodes2ornt(tuple(axcodes))
    transform = ornt.ornt_transform(current, target)
    array = ornt.apply_orientation(volume.array, transform)
    affine = volume.affine @ ornt.inv_ornt_aff(transform, volume.shape)
    return volume.with_array(np.ascontiguousarray(array), affine=affine)


def to_canonical(volume: Volume) -> Volume:
    """``reorient(volume, "RAS")``: i to the Right, j Anterior, k Superior."""
    return reorient(volume, "RAS")


# ------------------------------------------------------------------ resampling
def _resample_array(array: np.ndarray, matrix: np.ndarray, offset: np.ndarray,
                    shape: Sequence[int], order: int, cval: float) -> np.ndarray:
    from scipy import ndimage

    if order not in (0, 1, 3):
        raise UsageError(f"order must be 0 (nearest), 1 (linear) or 3 (cubic). "
                         f"Received: order={order}")
    shape = tuple(int(v) for v in shape)
    dtype = array.dtype
    work = array if order == 0 else array.astype(np.float32, copy=False)
    chans = [work] if work.ndim == 3 else [work[..., c] for c in range(work.shape[3])]
    outs = [ndimage.affine_transform(c, matrix, offset=offset, output_shape=shape, order=order,
                                     mode="constant", cval=cval, prefilter=order > 1)
            for c in chans]
    out = outs[0] if work.ndim == 3 else np.stack(outs, axis=-1)
    if order == 0:
        return out.astype(dtype, copy=False)
    return out.astype(np.float32, copy=False)


def _default_order(volume: Volume, order: int | None) -> int:
    if order is not None:
        return order
    return 0 if np.issubdtype(volume.array.dtype, np.integer) or volume.array.dtype == bool else 1


def resample_to_spacing(volume: Volume, spacing: Sequence[float], *, order: int | None = None,
                        cval: float = 0.0) -> Volume:
    """Resample onto a grid of ``spacing`` mm with the same origin (first voxel centre),
    directions and field of view (rounded to whole voxels).

    Args:
        order: 0 nearest (labels), 1 linear, 3 cubic; default 0 for integer arrays, else 1.
        cval: value outside the original grid.
    """
    spacing = np.asarray([float(s) for s in spacing])
    if spacing.shape != (3,) or spacing.min() <= 0:
        raise UsageError(f"spacing must be three positive millimetre values. "
                         f"Received: spacing={tuple(spacing)}")
    old = np.asarray(volume.spacing)
    extent = np.asarray(volume.shape) * old
    shape = np.maximum(1, np.round(extent / spacing)).astype(int)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.direction * spacing[None, :]
    ratio = spacing / old
    array = _resample_array(volume.array, np.diag(ratio), np.zeros(3), shape,
                            _default_order(volume, order), cval)
    return volume.with_array(array, affine=affine)


def resample_to_shape(volume: Volume, shape: Sequence[int], *, order: int | None = None,
                      cval: float = 0.0) -> Volume:
    """Resample onto ``shape`` voxels covering the same field of view (voxel edges aligned:
    the outer faces of the first and last voxels stay where they were)."""
    shape = np.asarray([int(v) for v in shape])
    if shape.shape != (3,) or shape.min() < 1:
        raise UsageError(f"shape must be three positive sizes. Received: shape={tuple(shape)}")
    old_n = np.asarray(volume.shape)
    scale = old_n / shape  # input voxels per output voxel
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * scale[None, :]
    affine[:3, 3] = volume.affine[:3, :3] @ (0.5 * scale - 0.5) + volume.affine[:3, 3]
    array = _resample_array(volume.array, np.diag(scale), 0.5 * scale - 0.5, shape,
                            _default_order(volume, order), cval)
    return volume.with_array(array, affine=affine)


def resample_like(volume: Volume, reference: Volume, *, order: int | None = None,
                  cval: float = 0.0) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid (shape and affine), through world space.

    The result has exactly ``reference``'s affine and shape: use it to bring a prediction made
    on a resampled or reoriented grid back to the input's geometry.
    """
    mapping = np.linalg.inv(volume.affine) @ reference.affine  # reference voxel -> volume voxel
    array = _resample_array(volume.array, mapping[:3, :3], mapping[:3, 3], reference.shape,
                            _default_order(volume, order), cval)
    return volume.with_array(array, affine=reference.affine.copy())


# ------------------------------------------------------------------ intensities
def window(array: np.ndarray, preset: str | tuple[float, float]) -> np.ndarray:
    """Map CT values (HU) through a window to ``[0, 1]`` float32.

    ``preset`` is a name of :data:`WINDOW_PRESETS` (brain, subdural, stroke, lung,
    mediastinum, abdomen, liver, bone) or a ``(width, level)`` pair.
    """
    if isinstance(preset, str):
        if preset not in WINDOW_PRESETS:
            from visionsuite.errors import did_you_mean

            raise UsageError(f"unknown window {preset!r}.{did_you_mean(preset, WINDOW_PRESETS)} "
                             f"Received: preset={preset!r}")
        width, level = WINDOW_PRESETS[preset]
    else:
        width, level = (float(v) for v in preset)
    if width <= 0:
        raise UsageError(f"a window's width must be > 0. Received: width={width}")
    low = level - width / 2.0
    return np.clip((np.asarray(array, np.float32) - low) / width, 0.0, 1.0)


def normalize_percentile(array: np.ndarray, lower: float = 0.5, upper: float = 99.5,
                         mask: np.ndarray | None = None) -> np.ndarray:
    """Scale so that the ``lower``/``upper`` percentiles (of the voxels in ``mask``, default
    all) map to 0 and 1, clipped: robust MR normalisation. float32."""
    a = np.asarray(array, np.float32)
    values = a[mask.astype(bool)] if mask is not None else a
    if values.size == 0:
        raise DataError("normalisation mask is empty. Received: 0 voxels")
    lo, hi = np.percentile(values, [lower, upper])
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def zscore(array: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(x - mean) / std`` over the voxels in ``mask`` (default all); float32."""
    a = np.asarray(array, np.float32)
    values = a[mask.astype(bool)] if mask is not None else a
    if values.size == 0:
        raise DataError("normalisation mask is empty. Received: 0 voxels")
    std = float(values.std())
    return (a - float(values.mean())) / (std if std > 0 else 1.0)


# ------------------------------------------------------------------ crops and patches
@dataclasses.dataclass(frozen=True)
class Box:
    """A voxel box ``[start, stop)`` per axis in a volume of ``shape``."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    shape: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def paste(self, array: np.ndarray, fill=0) -> np.ndarray:
        """Put a cropped ``array`` back into a full-size array filled with ``fill``."""
        out = np.full(self.shape + array.shape[3:], fill, dtype=array.dtype)
        out[self.slices] = array
        return out


def foreground_box(mask: np.ndarray, margin: int = 0) -> Box:
    """The bounding box of ``mask``'s non-zero voxels grown by ``margin`` (clipped)."""
    mask = np.asarray(mask)
    if mask.ndim == 4:
        mask = mask.any(axis=-1)
    idx = np.argwhere(mask)
    shape = tuple(int(v) for v in mask.shape[:3])
    if idx.size == 0:
        raise DataError("cannot crop to the foreground: nothing is above the threshold. "
                        "Received: an empty mask")
    start = tuple(int(max(0, v - margin)) for v in idx.min(axis=0))
    stop = tuple(int(min(n, v + 1 + margin)) for v, n in zip(idx.max(axis=0), shape))
    return Box(start, stop, shape)


def crop(volume: Volume, box: Box) -> Volume:
    """The part of ``volume`` inside ``box``; the affine is shifted so voxels keep their
    world positions."""
    affine = volume.affine.copy()
    affine[:3, 3] = volume.world(box.start)
    return volume.with_array(np.ascontiguousarray(volume.array[box.slices]), affine=affine)


def crop_to_foreground(volume: Volume, threshold: float | None = None, margin: int = 0,
                       mask: np.ndarray | None = None) -> tuple[Volume, Box]:
    """Crop to the voxels above ``threshold`` (default: above the minimum) or to ``mask``.

    Returns the cropped volume and the :class:`Box` (``box.paste`` puts a result back).
    """
    if mask is None:
        a = volume.array if volume.array.ndim == 3 else volume.array.max(axis=-1)
        mask = a > (a.min() if threshold is None else threshold)
    box = foreground_box(mask, margin)
    return crop(volume, box), box


def sample_patches(image: np.ndarray, label: np.ndarray, patch_size: Sequence[int], n: int, *,
                   positive_fraction: float = 0.5, rng: np.random.Generator | None = None,
                   pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``n`` patches: a ``positive_fraction`` of them centred on a random labelled voxel
    (``label > 0``), the rest anywhere (uniformly).

    Args:
        image: ``(D, H, W)`` or ``(D, H, W, C)``; padded with ``pad_value`` where smaller than
            the patch.
        label: ``(D, H, W)`` integer labels (padded with 0).
    Returns:
        ``(images (n, d, h, w, C), labels (n, d, h, w), positive (n,) bool)``.
    """
    rng = rng or np.random.default_rng()
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., None]
    label = np.asarray(label)
    if image.shape[:3] != label.shape:
        raise DataError(f"image and label shapes differ. Received: {image.shape[:3]} and "
                        f"{label.shape}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise UsageError(f"positive_fraction must be in [0, 1]. "
                         f"Received: positive_fraction={positive_fraction}")
    size = np.asarray([int(v) for v in patch_size])
    pad = np.maximum(size - np.asarray(label.shape), 0)
    if pad.any():
        widths = [(int(p) // 2, int(p) - int(p) // 2) for p in pad]
        image = np.pad(image, widths + [(0, 0)], constant_values=pad_value)
        label = np.pad(label, widths)
    shape = np.asarray(label.shape)
    fg = np.argwhere(label > 0)
    n_pos = int(round(n * positive_fraction)) if len(fg) else 0
    imgs, labs, positive = [], [], []
    for k in range(n):
        if k < n_pos:
            centre = fg[rng.integers(len(fg))]
            start = np.clip(centre - size // 2, 0, shape - size)
        else:
            start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, size)])
        sl = tuple(slice(int(a), int(a + b)) for a, b in zip(start, size))
        imgs.append(image[sl])
        labs.append(label[sl])
        positive.append(k < n_pos)
    order = rng.permutation(n)
    return (np.stack(imgs)[order], np.stack(labs)[order], np.asarray(positive)[order])


# ------------------------------------------------------------------ augmentation
class Augment3D:
    """Random 3D augmentation of an image patch ``(D, H, W[, C])`` and its labels ``(D, H, W)``.

    Spatial: flips and 90-degree rotations (``symmetry="cubic"``: Albumentations'
    ``CubicSymmetry`` on its ``volume``/``mask3d`` targets, all 48 symmetries of a cube; needs
    cubic patches, since axes are permuted; ``"flips"``: independent flips of each axis),
    then with probability ``affine_p`` a small affine (rotation up to ``rotate_deg`` about each
    axis, isotropic scale within ``scale``; image linear, labels nearest; scipy.ndimage).
    Intensity (image only, numpy): scale and shift, gamma on the [min, max] range, Gaussian
    noise.

    Args:
        symmetry: "cubic", "flips" or None.
        affine_p, rotate_deg, scale: the small affine.
        intensity_p, intensity_scale, intensity_shift: ``x * U(1-s, 1+s) + U(-t, t)``
            (shift in units of the patch's standard deviation).
        gamma_p, gamma: exponent drawn from ``gamma`` (range).
        noise_p, noise_std: Gaussian noise, std as a fraction of the patch's std.
        seed: for reproducible draws.

    Example:
        >>> aug = Augment3D(seed=0)
        >>> img, lab = aug(np.zeros((32, 32, 32, 1), np.float32), np.zeros((32, 32, 32), np.uint8))
    """

    def __init__(self, symmetry: str | None = "flips", affine_p: float = 0.3,
                 rotate_deg: float = 10.0, scale: tuple[float, float] = (0.9, 1.1),
                 intensity_p: float = 0.5, intensity_scale: float = 0.1,
                 intensity_shift: float = 0.1, gamma_p: float = 0.3,
                 gamma: tuple[float, float] = (0.7, 1.5), noise_p: float = 0.2,
                 noise_std: float = 0.05, seed: int | None = None):
        if symmetry not in ("cubic", "flips", None):
            raise UsageError(f"symmetry must be 'cubic', 'flips' or None. "
                             f"Received: symmetry={symmetry!r}")
        self.symmetry, self.affine_p, self.rotate_deg = symmetry, affine_p, rotate_deg
        self.scale, self.intensity_p = tuple(scale), intensity_p
        self.intensity_scale, self.intensity_shift = intensity_scale, intensity_shift
        self.gamma_p, self.gamma, self.noise_p, self.noise_std = gamma_p, tuple(gamma), noise_p, \
            noise_std
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._cubic = None
        if symmetry == "cubic":
            import os

            os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
            import albumentations as A

            self._cubic = A.Compose([A.CubicSymmetry(p=1.0)],
                                    seed=None if seed is None else int(seed))

    def get_config(self) -> dict:
        return {"symmetry": self.symmetry, "affine_p": self.affine_p,
                "rotate_deg": self.rotate_deg, "scale": self.scale,
                "intensity_p": self.intensity_p, "intensity_scale": self.intensity_scale,
                "intensity_shift": self.intensity_shift, "gamma_p": self.gamma_p,
                "gamma": self.gamma, "noise_p": self.noise_p, "noise_std": self.noise_std,
                "seed": self.seed}

    def __call__(self, image: np.ndarray, label: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        image = np.asarray(image, np.float32)
        squeeze = image.ndim == 3
        if squeeze:
            image = image[..., None]
        if label is not None and np.asarray(label).shape != image.shape[:3]:
            raise DataError(f"image and label shapes differ. Received: {image.shape[:3]} and "
                            f"{np.asarray(label).shape}")
        lab = None if label is None else np.asarray(label)
        image, lab = self._spatial(image, lab)
        image = self._intensity(image)
        return (image[..., 0] if squeeze else image), lab

    def _spatial(self, image, lab):
        rng = self.rng
        if self.symmetry == "cubic":
            if len(set(image.shape[:3])) != 1:
                raise DataError(f"symmetry='cubic' permutes axes and needs a cubic patch. "
                                f"Received: shape {image.shape[:3]}")
            data = {"volume": image}
            if lab is not None:
                data["mask3d"] = lab
            out = self._cubic(**data)
            image, lab = out["volume"], out.get("mask3d", lab)
        elif self.symmetry == "flips":
            axes = tuple(a for a in range(3) if rng.random() < 0.5)
            if axes:
                image = np.flip(image, axis=axes)
                lab = None if lab is None else np.flip(lab, axis=axes)
        if self.affine_p and rng.random() < self.affine_p:
            image, lab = self._affine(image, lab)
        return np.ascontiguousarray(image), None if lab is None else np.ascontiguousarray(lab)

    def _affine(self, image, lab):
        from scipy import ndimage
        from scipy.spatial.transform import Rotation

        rng = self.rng
        angles = rng.uniform(-self.rotate_deg, self.rotate_deg, 3)
        zoom = rng.uniform(*self.scale)
        matrix = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() / zoom
        centre = (np.asarray(image.shape[:3]) - 1) / 2.0
        offset = centre - matrix @ centre
        image = np.stack([ndimage.affine_transform(image[..., c], matrix, offset=offset, order=1,
                                                   mode="nearest")
                          for c in range(image.shape[3])], axis=-1)
        if lab is not None:
            lab = ndimage.affine_transform(lab, matrix, offset=offset, order=0, mode="constant",
                                           cval=0).astype(lab.dtype)
        return image, lab

    def _intensity(self, image):
        rng = self.rng
        std = float(image.std()) or 1.0
        if rng.random() < self.intensity_p:
            image = image * rng.uniform(1 - self.intensity_scale, 1 + self.intensity_scale) \
                + rng.uniform(-self.intensity_shift, self.intensity_shift) * std
        if rng.random() < self.gamma_p:
            lo, hi = float(image.min()), float(image.max())
            if hi > lo:
                g = rng.uniform(*self.gamma)
                image = ((image - lo) / (hi - lo)) ** g * (hi - lo) + lo
        if rng.random() < self.noise_p:
            image = image + rng.normal(0.0, self.noise_std * std, image.shape)
        return image.astype(np.float32, copy=False)
