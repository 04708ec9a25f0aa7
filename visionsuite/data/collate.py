"""One generic collate for every task: per-sample structures of arrays -> one batch.

A task's ``to_arrays(outputs, sample)`` returns a nested structure (tuples, lists, dicts) of
arrays; its ``output_signature`` has the same structure with one leaf per array:

* a ``tf.TensorSpec`` -- a dense part: every sample has this shape and the batch stacks them;
* a :class:`Padded` -- a variable-length part (boxes ``(N_i, 4)``, keypoints, track ids):
  padded along its first axis with ``pad_value`` to ``max_len`` (a fixed batch shape, as
  XLA, TPUs and distributed training want) or, without ``max_len``, to the longest in the
  batch. The padding value doubles as the mask (e.g. class ``-1`` = no box).

Example:
    >>> signature = (tf.TensorSpec((64, 64, 3), tf.float32),
    ...              {"boxes": Padded(tf.TensorSpec((None, 4), tf.float32), max_len=20),
    ...               "classes": Padded(tf.TensorSpec((None,), tf.int32), max_len=20)})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from visionsuite.errors import DataError


@dataclasses.dataclass(frozen=True)
class Padded:
    """A variable-length leaf of an output signature (see the module docstring).

    Args:
        spec: the per-sample ``tf.TensorSpec`` with ``None`` as its first size.
        pad_value: the value of padded rows (``-1`` marks "no item").
        max_len: pad every batch to this length (longer samples are an error); ``None``
            pads to the longest sample of each batch.
    """

    spec: Any
    pad_value: float = -1
    max_len: int | None = None

    @property
    def dtype(self):
        return self.spec.dtype

    @property
    def shape(self):
        return self.spec.shape


def flatten(structure) -> list:
    """The leaves of a nested structure of tuples / lists / dicts (dict keys sorted)."""
    if isinstance(structure, dict):
        return [leaf for k in sorted(structure) for leaf in flatten(structure[k])]
    if isinstance(structure, (tuple, list)):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def pack_as(structure, leaves: Sequence):
    """``leaves`` put back into the shape of ``structure`` (inverse of :func:`flatten`)."""
    it = iter(leaves)

    def pack(s):
        if isinstance(s, dict):
            return {k: pack(s[k]) for k in sorted(s)}
        if isinstance(s, (tuple, list)):
            return type(s)(pack(x) for x in s)
        return next(it)

    return pack(structure)


def numpy_dtype(leaf) -> np.dtype:
    return np.dtype(leaf.dtype.as_numpy_dtype)


def collate(columns: Sequence[Sequence[np.ndarray]], leaves: Sequence) -> list[np.ndarray]:
    """Batch each column (one per leaf, one array per sample): stack dense leaves, pad
    :class:`Padded` ones."""
    out = []
    for k, (col, leaf) in enumerate(zip(columns, leaves)):
        dtype = numpy_dtype(leaf)
        if isinstance(leaf, Padded):
            rows = [np.asarray(a, dtype).reshape((-1,) + tuple(leaf.shape[1:])) for a in col]
            longest = max((len(r) for r in rows), default=0)
            n = leaf.max_len if leaf.max_len is not None else longest
            if longest > n:
                raise DataError(f"output {k}: a sample has {longest} rows, more than max_len="
                                f"{n}; raise max_len")
            batch = np.full((len(rows), n) + tuple(leaf.shape[1:]), leaf.pad_value, dtype)
            for i, r in enumerate(rows):
                batch[i, : len(r)] = r
            out.append(batch)
            continue
        try:
            out.append(np.stack(col).astype(dtype, copy=False))
        except ValueError as exc:  # ragged shapes: a transform that does not resize
            shapes = sorted({np.shape(a) for a in col})[:4]
            raise DataError(f"output {k} has different shapes within a batch {shapes}; the "
                            f"transform must produce fixed-size arrays, or declare the part "
                            f"Padded") from exc
    return out


def batch_shape(leaf, batch: int | None) -> list:
    """The static shape of a collated leaf (``None`` where it varies)."""
    if isinstance(leaf, Padded):
        return [batch, leaf.max_len, *leaf.shape[1:]]
    return [batch, *leaf.shape]
