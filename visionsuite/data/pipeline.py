"""``tf.data`` input pipelines built from a :class:`~visionsuite.task.Dataset`.

One function, :func:`make_tf_dataset`, serves every task. The task supplies three small
callables and the per-sample output signature; the pipeline does the rest::

    indices -> shuffle (training) -> batch of indices
            -> tf.numpy_function: for each index: load(sample) -> transform(**inputs)
                                  -> to_arrays(outputs, sample); stack the batch
            -> set static shapes -> prefetch

Working on batches of indices keeps the Python overhead to one ``numpy_function`` call per
batch. Each parallel worker thread owns a copy of the Albumentations transform, re-seeded
once per batch from a seed stream derived from ``seed``, so a run is reproducible (same
order, same augmentations) and still differs from epoch to epoch.

No normalisation happens here: models take RGB pixels in ``[0, 255]`` and normalise inside
(see :mod:`visionsuite.task`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from visionsuite.data.collate import batch_shape, collate, flatten, pack_as
from visionsuite.data.images import read_image, to_rgb
from visionsuite.errors import DataError
from visionsuite.task import Dataset, Sample

LoadFn = Callable[[Sample], Mapping[str, Any]]
ToArraysFn = Callable[[Mapping[str, Any], Sample], Sequence[np.ndarray]]


def load_rgb(sample: Sample) -> np.ndarray:
    """The sample's image as RGB ``uint8``: read from its path, or converted from the
    in-memory array (taken as RGB) it holds."""
    if isinstance(sample.image, np.ndarray):
        return to_rgb(sample.image, sample.source or "in-memory image", order="RGB")
    return read_image(sample.image)


def default_load(sample: Sample) -> dict:
    """``{"image": RGB uint8}``: the Albumentations inputs of an image-only sample."""
    return {"image": load_rgb(sample)}


def default_to_arrays(outputs: Mapping[str, Any], sample: Sample) -> tuple:
    """``(image, target)``: the transformed image and the sample's target unchanged."""
    return outputs["image"], np.asarray(sample.target)


class _BatchLoader:
    """The Python side of the pipeline: indices -> stacked arrays (one call per batch)."""

    def __init__(self, samples, load, transform, to_arrays, leaves):
        self.samples = samples
        self.load = load
        self.transform = transform
        self.to_arrays = to_arrays
        self.leaves = leaves
        self._local = threading.local()

    def _transform(self):
        if self.transform is None:
            return None
        t = getattr(self._local, "transform", None)
        if t is None:  # one copy per worker thread: Albumentations keeps RNG state inside
            t = self._local.transform = copy.deepcopy(self.transform)
        return t

    def __call__(self, indices: np.ndarray, seed: np.ndarray):
        transform = self._transform()
        if transform is not None and hasattr(transform, "set_random_seed"):
            transform.set_random_seed(int(seed) % (2**32))
        columns: list[list[np.ndarray]] | None = None
        for i in np.asarray(indices).reshape(-1):
            sample = self.samples[int(i)]
            inputs = dict(self.load(sample))
            outputs = transform(**inputs) if transform is not None else inputs
            arrays = flatten(self.to_arrays(outputs, sample))
            if columns is None:
                columns = [[] for _ in arrays]
            if len(arrays) != len(columns):
                raise DataError(f"{sample.source or sample.image}: to_arrays returned "
                                f"{len(arrays)} arrays, expected {len(columns)}")
            for col, a in zip(columns, arrays):
                col.append(np.asarray(a))
        return tuple(collate(columns, self.leaves))


def make_tf_dataset(
    dataset: Dataset,
    *,
    output_signature: Sequence[Any],
    batch_size: int,
    training: bool,
    load: LoadFn = default_load,
    transform: Any = None,
    to_arrays: ToArraysFn = default_to_arrays,
    seed: int = 0,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
):
    """Turn a task's :class:`~visionsuite.task.Dataset` into a batched ``tf.data.Dataset``.

    Args:
        dataset: the samples to serve.
        output_signature: the structure ``to_arrays`` returns (tuples, dicts), with one
            ``tf.TensorSpec`` per array *without* the batch axis, e.g.
            ``(TensorSpec((96, 96, 3), "float32"), TensorSpec((), "int32"))``, or a
            :class:`~visionsuite.data.collate.Padded` for a variable-length part (boxes).
            Arrays are cast to these dtypes.
        batch_size: samples per batch.
        training: shuffle the samples (reshuffled every epoch) and use a fresh augmentation
            seed per batch and epoch.
        load: ``load(sample) -> dict`` of Albumentations inputs (``image`` as RGB uint8,
            plus ``mask`` / ``bboxes`` / labels for tasks that have them).
        transform: an Albumentations ``Compose`` (or any callable taking those keyword
            arguments and returning a dict), applied jointly to image and targets; ``None``
            passes the inputs through.
        to_arrays: ``to_arrays(outputs, sample) -> structure of arrays`` shaped like
            ``output_signature``. Cast here whatever Albumentations hands back in another
            type (it returns class labels of boxes as floats).
        seed: seeds the shuffle order and the augmentations (same seed, same batches).
        drop_remainder: drop the last, smaller batch.
        num_parallel_calls: batches prepared in parallel; default ``tf.data.AUTOTUNE``.
            Output order is deterministic whatever the value.

    Returns:
        A ``tf.data.Dataset`` of batched tensors in the signature's structure (a 1-tuple is
        unwrapped), prefetched.

    Example:
        >>> ds = make_tf_dataset(
        ...     data, output_signature=(tf.TensorSpec((64, 64, 3), tf.float32),
        ...                            tf.TensorSpec((), tf.int32)),
        ...     batch_size=32, training=True, transform=A.Compose([A.Resize(64, 64)]))
    """
    import tensorflow as tf

    if int(batch_size) < 1:
        raise DataError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
    n = len(dataset)
    if n == 0:
        raise DataError("the dataset has no samples; check the path, split and format")
    signature = output_signature
    leaves = flatten(signature)
    loader = _BatchLoader(list(dataset.samples), load, transform, to_arrays, leaves)

    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(int(batch_size), drop_remainder=drop_remainder)
    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    else:
        seeds = tf.data.Dataset.from_tensors(tf.constant(seed, tf.int64)).repeat()
    ds = tf.data.Dataset.zip((indices, seeds))

    def fetch(idx, batch_seed):
        arrays = tf.numpy_function(loader, [idx, batch_seed], [leaf.dtype for leaf in leaves],
                                   stateful=False)
        batch = int(batch_size) if drop_remainder else None
        out = [tf.ensure_shape(a, batch_shape(leaf, batch)) for a, leaf in zip(arrays, leaves)]
        structure = pack_as(signature, out)
        if isinstance(structure, (tuple, list)) and len(structure) == 1:
            return structure[0]
        return tuple(structure) if isinstance(structure, list) else structure

    ds = ds.map(fetch, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
