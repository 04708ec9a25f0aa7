"""Per-epoch training checkpoints: model weights, optimizer state and the run's progress.

One ``.npz`` file (a zip of ``.npy`` arrays, read back with ``allow_pickle=False``) holds

* ``model.<i>``: the model's weights in ``model.weights`` order;
* ``optimizer.<i>``: the optimizer's variables (iterations, learning rate, moments, loss scale);
* ``rng.<i>``: the states of the model's random-number generators (dropout, in-model
  augmentation layers), so that a resumed run draws the same dropout masks as an
  uninterrupted one (the data pipeline's order and augmentation need no state: they are
  functions of the seed, the epoch and the batch);
* ``meta``: JSON with the :class:`RunState` and the weight paths and shapes, checked on load.

It is written to a temporary file in the same folder, flushed to disk and renamed over the
previous checkpoint, so a kill at any moment leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError
from visionsuite.files import atomic_path

FORMAT = 1


@dataclasses.dataclass
class RunState:
    """Progress of a run, saved in every checkpoint and restored by ``resume``."""

    # (int) epochs completed
    epoch: int = 0
    # (str) training phase of the saved optimizer: "full" | "frozen" | "finetune"
    phase: str = "full"
    # (float | None) best value of the monitored metric so far
    best: float | None = None
    # (int) epoch (1-based) that reached `best`
    best_epoch: int = 0
    # (int) epochs since the last improvement (early stopping)
    wait: int = 0
    # (int) epochs since the last improvement or learning-rate drop (plateau schedule)
    plateau_wait: int = 0
    # (bool) early stopping ended the run
    stopped_early: bool = False


def rng_variables(model) -> list:
    """The model's variables that are not weights: the states of its seed generators."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def write_checkpoint(path: str | Path, model, optimizer, state: RunState) -> Path:
    """Write model weights, optimizer variables and ``state`` to ``path`` atomically."""
    path = Path(path)
    weights = model.weights
    arrays = {f"model.{i}": np.asarray(v) for i, v in enumerate(model.get_weights())}
    store: dict = {}
    optimizer.save_own_variables(store)
    arrays.update({f"optimizer.{k}": np.asarray(v) for k, v in store.items()})
    meta = {"format": FORMAT, "state": dataclasses.asdict(state),
            "weights": [[w.path, list(w.shape)] for w in weights],
            "optimizer_variables": len(store)}
    rng = rng_variables(model)
    arrays.update({f"rng.{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                   for i, v in enumerate(rng)})
    meta["rng_variables"] = [v.path for v in rng]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
    return path


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    state: RunState
    model_weights: list
    optimizer_store: dict
    weight_paths: list
    rng_states: list = dataclasses.field(default_factory=list)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint, with a one-line error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(f["meta"].tobytes().decode())
            n_model = len(meta["weights"])
            weights = [f[f"model.{i}"] for i in range(n_model)]
            store = {str(i): f[f"optimizer.{i}"] for i in range(meta["optimizer_variables"])}
            state = RunState(**meta["state"])
            rng = [f[f"rng.{i}"] for i in range(len(meta.get("rng_variables", [])))]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    return Checkpoint(state, weights, store, [p for p, _ in meta["weights"]], rng)


def restore_model(checkpoint: Checkpoint, model, source: str) -> None:
    """Load the checkpoint's weights into ``model`` (built the same way as when saved)."""
    shapes = [tuple(w.shape) for w in model.weights]
    saved = [tuple(w.shape) for w in checkpoint.model_weights]
    if shapes != saved:
        raise ModelError(f"{source}: checkpoint does not match the model being resumed "
                         f"({len(saved)} weights vs {len(shapes)}); resume with the run's own "
                         f"config.yaml")
    model.set_weights(checkpoint.model_weights)
    rng = rng_variables(model)
    if len(rng) == len(checkpoint.rng_states) and all(
            tuple(v.shape) == tuple(a.shape) for v, a in zip(rng, checkpoint.rng_states)):
        for v, a in zip(rng, checkpoint.rng_states):
            v.assign(a)


def restore_optimizer(checkpoint: Checkpoint, optimizer, variables, source: str) -> None:
    """Build ``optimizer`` for ``variables`` and load the saved optimizer state into it."""
    if not optimizer.built:
        optimizer.build(variables)
    if len(checkpoint.optimizer_store) != len(optimizer.variables):
        raise ModelError(f"{source}: checkpoint holds {len(checkpoint.optimizer_store)} optimizer "
                         f"variables, the optimizer has {len(optimizer.variables)}; resume with "
                         f"the run's own config.yaml")
    optimizer.load_own_variables(checkpoint.optimizer_store)
