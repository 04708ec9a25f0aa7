"""``tf.data`` input pipelines built from a :class:`~visionsuite.task.Dataset`.

One function, :func:`make_tf_dataset`, serves every task. The task supplies three small
callables and the per-sample output signature; the pipeline does the rest::

    indices -> shuffle (training) -> batch of indices
            -> tf.numpy_function: for each index: load(sample) -> transform(**inputs)
                                  -> to_arrays(outputs, sample); stack the batch
            -> set static shapes -> prefetch

Working on batches of indices keeps the Python overhead to one ``numpy_function`` call per
batch. Each parallel worker thread owns a copy of the Albumentations transform, re-seeded
once per batch.

Order and augmentation are pure functions of ``(seed, epoch, batch)``: epoch ``e`` visits the
samples in the permutation seeded by ``(seed, e)`` and batch ``b`` of it is augmented with a
seed derived from ``(seed, e, b)`` -- nothing depends on how far an iterator has run. So a
training run that resumes at epoch ``e`` sees exactly the batches an uninterrupted run would
have seen: the trainer says where it starts with :func:`pipeline_scope` (``start_batch``), and
inside that scope a training dataset is an endless stream of epochs starting there. Outside
it, a training dataset is one epoch whose epoch key is drawn afresh on every iteration.

A sample that cannot be read (a PNG damaged in the middle, a truncated mask) is skipped: it is
reported once, naming the file, and its place in the batch goes to the next readable sample,
so batch shapes never change. In strict mode (``pipeline_scope(strict=True)``, the trainer's
``--strict``) the first unreadable sample stops the run with one line naming the file; use
:func:`sample_error` to turn the TensorFlow error that carries it back into that
:class:`~visionsuite.errors.DataError`.

No normalisation happens here: models take RGB pixels in ``[0, 255]`` and normalise inside
(see :mod:`visionsuite.task`).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from visionsuite.data.collate import batch_shape, collate, flatten, pack_as
from visionsuite.data.images import read_image, to_rgb
from visionsuite.errors import DataError
from visionsuite.task import Dataset, Sample

log = logging.getLogger("visionsuite.data")

LoadFn = Callable[[Sample], Mapping[str, Any]]
ToArraysFn = Callable[[Mapping[str, Any], Sample], Sequence[np.ndarray]]

_SCOPE: contextvars.ContextVar[dict] = contextvars.ContextVar("visionsuite_pipeline", default={})
# Marks the message of a strict-mode failure inside tf.data, so sample_error can find it.
_MARK = "[visionsuite unreadable sample] "


class UnreadableSample(DataError):
    """A sample that cannot be read, in strict mode."""


@contextlib.contextmanager
def pipeline_scope(*, strict: bool | None = None,
                   start_batch: int | None = None) -> Iterator[None]:
    """Options for the datasets :func:`make_tf_dataset` builds inside the ``with`` block.

    Args:
        strict: an unreadable sample stops the run (instead of being skipped).
        start_batch: training datasets become an endless stream of epochs that starts at this
            global batch (``epoch * batches_per_epoch + batch``); the trainer passes
            ``epochs_done * steps_per_epoch`` so that a resumed run continues exactly where
            the interrupted one stopped. ``None``: one epoch per iteration.

    Example:
        >>> with pipeline_scope(strict=True, start_batch=2 * steps):
        ...     train_ds = task.make_tf_dataset(train, batch_size=32, training=True)
    """
    if start_batch is not None and int(start_batch) < 0:
        raise DataError(f"start_batch must be >= 0. Received: start_batch={start_batch}")
    options = dict(_SCOPE.get())
    if strict is not None:
        options["strict"] = bool(strict)
    if start_batch is not None:
        options["start_batch"] = int(start_batch)
    token = _SCOPE.set(options)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def sample_error(exc: BaseException) -> DataError | None:
    """The one-line :class:`DataError` behind a TensorFlow error raised by a strict
    pipeline's unreadable sample, or ``None`` for any other error."""
    match = re.search(re.escape(_MARK) + r"(.+)", str(exc))
    return UnreadableSample(match.group(1).strip()) if match else None


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

    def __init__(self, samples, load, transform, to_arrays, leaves, strict=False):
        self.samples = samples
        self.load = load
        self.transform = transform
        self.to_arrays = to_arrays
        self.leaves = leaves
        self.strict = strict
        self.unreadable: dict[int, str] = {}  # index -> reason, each reported once
        self._lock = threading.Lock()
        self._local = threading.local()

    def _read(self, index: int):
        """``(sample, load(sample))`` of ``index`` or, when it cannot be read, of the next
        readable sample (skipped ones are reported once; strict mode raises)."""
        n = len(self.samples)
        for k in range(n):
            i = (index + k) % n
            if i in self.unreadable:
                continue
            sample = self.samples[i]
            try:
                return sample, dict(self.load(sample))
            except Exception as exc:  # decoding: whatever the reader raises
                name = sample.source or (sample.image if isinstance(sample.image, str)
                                         else str(sample.image)[:80])
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                if not isinstance(exc, DataError) or str(name) not in reason:
                    reason = f"{name}: {type(exc).__name__}: {reason}"
                if self.strict:
                    raise UnreadableSample(f"{_MARK}{reason} (strict mode; without --strict "
                                           f"the sample is skipped)") from exc
                with self._lock:
                    first = i not in self.unreadable
                    self.unreadable[i] = reason
                if first:
                    log.warning("skipped unreadable sample: %s", reason)
        raise DataError(f"none of the {n} samples can be read; the first: "
                        f"{next(iter(self.unreadable.values()), '?')}")

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
            sample, inputs = self._read(int(i))
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
    options = _SCOPE.get()
    loader = _BatchLoader(list(dataset.samples), load, transform, to_arrays, leaves,
                          strict=options.get("strict", False))
    bs = int(batch_size)
    per_epoch = n // bs if drop_remainder else math.ceil(n / bs)
    if per_epoch < 1:
        raise DataError(f"the dataset has fewer samples ({n}) than one batch and "
                        f"drop_remainder is set. Received: batch_size={bs}")
    base = tf.constant(int(seed), tf.int64)

    def epoch_batches(epoch):
        """The batches of epoch ``epoch``: (indices, epoch, batch number)."""
        if training:  # the permutation is a pure function of (seed, epoch)
            key = tf.stack([base, tf.cast(epoch, tf.int64)])
            order = tf.argsort(tf.random.stateless_uniform([n], seed=key))
        else:
            order = tf.range(n)
        indices = tf.data.Dataset.from_tensor_slices(tf.cast(order, tf.int64))
        indices = indices.batch(bs, drop_remainder=drop_remainder)
        numbers = tf.data.Dataset.range(per_epoch)
        epochs = tf.data.Dataset.from_tensors(tf.cast(epoch, tf.int64)).repeat()
        return tf.data.Dataset.zip((indices, epochs, numbers))

    start = options.get("start_batch")
    if training and start is not None:  # the trainer's endless, resumable stream
        ds = tf.data.Dataset.counter(start // per_epoch).flat_map(epoch_batches)
        ds = ds.skip(start % per_epoch)  # cheap: indices only, nothing is read yet
        ds = ds.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    elif training:  # one epoch, a fresh epoch key on each iteration
        keys = tf.data.Dataset.random(seed=int(seed), rerandomize_each_iteration=True)
        ds = keys.take(1).flat_map(epoch_batches)
        ds = ds.apply(tf.data.experimental.assert_cardinality(per_epoch))
    else:
        ds = epoch_batches(tf.constant(0, tf.int64))

    def fetch(idx, epoch, number):
        # the augmentation seed of a batch is a pure function of (seed, epoch, batch)
        key = tf.random.experimental.stateless_fold_in(tf.stack([base, epoch]), number)
        batch_seed = (tf.random.stateless_uniform([], seed=key, minval=0, maxval=2**31 - 1,
                                                  dtype=tf.int64) if training else base)
        return _fetch(idx, batch_seed)

    def _fetch(idx, batch_seed):
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
