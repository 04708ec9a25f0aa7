"""A medical image volume with its geometry: voxels plus the affine that puts them in the world.

Conventions (one for the whole medical task, so that nothing is guessed twice):

* ``Volume.array`` is indexed ``array[i, j, k]``, optionally with a trailing channel axis
  (``array[i, j, k, c]``): nibabel's voxel order. The model layout ``DHWC`` maps ``D, H, W``
  to ``i, j, k`` one to one (:meth:`Volume.to_dhwc`), so readers, models and writers never
  transpose, and there is no place where a flip can sneak in.
* ``Volume.affine`` is a 4x4 float64 matrix mapping voxel indices ``(i, j, k, 1)`` to world
  coordinates in millimetres, in **RAS+** (NIfTI's and nibabel's world): +x points to the
  patient's Right, +y to Anterior, +z to Superior. DICOM's patient coordinates are LPS+
  (+x Left, +y Posterior, +z Superior); the DICOM reader converts with
  ``diag(-1, -1, 1)`` (:data:`LPS_TO_RAS`) and nothing else.
* Voxel (0, 0, 0) is the *centre* of the first voxel (NIfTI and DICOM agree on this).
* ``spacing`` (mm per voxel step along i, j, k), ``origin`` (world position of voxel 0) and
  ``direction`` (unit columns) are derived from the affine, never stored separately, so they
  cannot disagree with it.

A 2D image is a volume with one slice along ``k`` (shape ``(I, J, 1)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from visionsuite.errors import DataError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclasses.dataclass
class Volume:
    """A 3D (optionally multi-channel) image with its world geometry.

    Args:
        array: voxels indexed ``[i, j, k]`` or ``[i, j, k, c]``.
        affine: 4x4 voxel-to-world matrix, RAS+ millimetres (see the module docstring).
        modality: DICOM-style modality ("CT", "MR", ...) when known, else None.
        patient_id: the patient the image belongs to, when known (DICOM PatientID or the
            case table's ``patient`` column); splits are grouped on it.
        source: where the volume came from (a path), for messages.
        meta: anything else a reader wants to keep (series UID, rescale, window...).

    Example:
        >>> vol = Volume(np.zeros((4, 5, 6), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
        >>> vol.spacing
        (2.0, 2.0, 3.0)
        >>> vol.to_dhwc().shape
        (4, 5, 6, 1)
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str | None = None
    patient_id: str | None = None
    source: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.array = np.asarray(self.array)
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise DataError(f"a volume's affine must be 4x4. Received: shape {affine.shape}"
                            f"{self._from()}")
        if not np.all(np.isfinite(affine)) or not np.allclose(affine[3], [0, 0, 0, 1]):
            raise DataError(f"a volume's affine must be finite with last row [0, 0, 0, 1]. "
                            f"Received: {affine.tolist()}{self._from()}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise DataError(f"a volume's affine is singular (zero spacing or parallel axes). "
                            f"Received: {affine[:3, :3].tolist()}{self._from()}")
        if self.array.ndim not in (3, 4):
            raise DataError(f"a volume's array must be (I, J, K) or (I, J, K, C). "
                            f"Received: shape {self.array.shape}{self._from()}")
        self.affine = affine

    def _from(self) -> str:
        return f" (from {self.source})" if self.source else ""

    # --- geometry derived from the affine
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(I, J, K)``."""
        return tuple(int(v) for v in self.array.shape[:3])

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Millimetres per voxel step along i, j, k (norms of the affine's columns)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """World (RAS+, mm) position of the centre of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit world directions of i, j, k."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def orientation(self) -> str:
        """Axis codes such as ``"RAS"`` or ``"LPS"`` (nibabel's ``aff2axcodes``)."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))

    def world(self, ijk) -> np.ndarray:
        """World coordinates (RAS+, mm) of voxel indices ``ijk`` (shape (..., 3))."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def corners_world(self) -> np.ndarray:
        """World coordinates of the centres of the 8 corner voxels, shape (8, 3)."""
        i, j, k = (np.array([0, n - 1]) for n in self.shape)
        grid = np.stack(np.meshgrid(i, j, k, indexing="ij"), axis=-1).reshape(-1, 3)
        return self.world(grid)

    # --- conversions
    def to_dhwc(self, dtype="float32") -> np.ndarray:
        """The array as model input ``(D, H, W, C)`` = ``(I, J, K, C)``."""
        arr = self.array if self.array.ndim == 4 else self.array[..., None]
        return arr.astype(dtype, copy=False)

    def with_array(self, array: np.ndarray, affine: np.ndarray | None = None,
                   **changes) -> Volume:
        """A copy with another array (same geometry unless ``affine`` is given)."""
        return dataclasses.replace(self, array=array,
                                   affine=self.affine if affine is None else affine,
                                   meta=dict(self.meta), **changes)

    def same_geometry(self, other: Volume, atol: float = 1e-4) -> bool:
        """True when ``other`` has the same spatial shape and (to ``atol`` mm) affine."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine,
                                                              atol=atol, rtol=0))

    def __repr__(self) -> str:
        sp = ", ".join(f"{v:.3g}" for v in self.spacing)
        return (f"Volume(shape={self.array.shape}, dtype={self.array.dtype}, spacing=({sp}) mm, "
                f"orientation={self.orientation}, modality={self.modality}, "
                f"patient_id={self.patient_id!r}, source={self.source!r})")


def check_label_matches(image: Volume, label: Volume, atol: float = 1e-3) -> None:
    """Raise a one-line DataError unless ``label`` has ``image``'s shape and affine."""
    if image.shape != label.shape:
        raise DataError(f"label {label.source or '(array)'} has shape {label.shape}, its image "
                        f"{image.source or '(array)'} has {image.shape}; they must match voxel "
                        f"for voxel. Received: label shape {label.shape}")
    if not np.allclose(image.affine, label.affine, atol=atol, rtol=0):
        diff = float(np.max(np.abs(image.affine - label.affine)))
        raise DataError(f"label {label.source or '(array)'} has a different affine than its image "
                        f"{image.source or '(array)'} (max difference {diff:.4g} mm; resample "
                        f"it onto the image first). Received: label affine "
                        f"{np.round(label.affine, 4).tolist()}")
