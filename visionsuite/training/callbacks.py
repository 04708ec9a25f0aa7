"""The engine's Keras callbacks and run-directory writers.

:class:`RunCallback` runs at the end of every epoch, in this order: track the monitored
metric (best ``.keras`` on improvement), lower the learning rate on a plateau, decide early
stopping, then write the checkpoint atomically. Its :class:`RunState` lives across the
frozen and fine-tuning phases and is saved in each checkpoint, so a resumed run continues
with the same best value and patience counters.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import keras

from visionsuite.errors import UsageError
from visionsuite.files import atomic_path
from visionsuite.models import save_keras_model
from visionsuite.training.checkpoint import RunState, write_checkpoint

log = logging.getLogger("visionsuite")


def monitor_mode(monitor: str) -> str:
    """``"min"`` for losses and errors, ``"max"`` for everything else (accuracy, IoU...)."""
    name = monitor.lower()
    return "min" if ("loss" in name or "error" in name or name.endswith(("mae", "mse"))) else "max"


class RunCallback(keras.callbacks.Callback):
    """Best model, plateau schedule, early stopping and per-epoch checkpoint.

    Args:
        state: the run's :class:`RunState` (updated in place).
        monitor: metric name in the epoch logs (e.g. ``"val_loss"``).
        best_path: where the best model is saved (``None``: not written, e.g. non-chief).
        checkpoint_path: where the checkpoint is written (``None``: not written).
        metadata: :class:`~visionsuite.models.ModelMetadata` stored in ``best.keras``.
        early_stopping: patience in epochs, 0 = off.
        plateau_patience: epochs without improvement before the learning rate is multiplied
            by ``lr_decay`` (0 = no plateau schedule).
        lr_decay: factor of each plateau drop.
    """

    def __init__(self, state: RunState, *, monitor: str, best_path, checkpoint_path, metadata,
                 early_stopping: int = 0, plateau_patience: int = 0, lr_decay: float = 0.1):
        super().__init__()
        self.state = state
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.best_path = best_path
        self.checkpoint_path = checkpoint_path
        self.metadata = metadata
        self.early_stopping = int(early_stopping)
        self.plateau_patience = int(plateau_patience)
        self.lr_decay = float(lr_decay)

    def _improved(self, value: float) -> bool:
        if self.state.best is None or math.isnan(self.state.best):
            return not math.isnan(value)
        return value < self.state.best if self.mode == "min" else value > self.state.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise UsageError(f"monitor {self.monitor!r} is not a metric of this run; available: "
                             f"{', '.join(sorted(logs))}. Received: monitor={self.monitor!r}")
        value = float(logs[self.monitor])
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        state = self.state
        state.epoch = epoch + 1
        if self._improved(value):
            state.best, state.best_epoch, state.wait, state.plateau_wait = value, epoch + 1, 0, 0
            if self.best_path is not None:
                save_keras_model(self.model, self.best_path, self.metadata)
        else:
            state.wait += 1
            state.plateau_wait += 1
        if self.plateau_patience and state.plateau_wait >= self.plateau_patience:
            lr = float(optimizer.learning_rate) * self.lr_decay
            optimizer.learning_rate.assign(lr)
            state.plateau_wait = 0
            log.info("epoch %d: %s did not improve for %d epochs; learning rate -> %.3g",
                     epoch + 1, self.monitor, self.plateau_patience, lr)
        if self.early_stopping and state.wait >= self.early_stopping:
            state.stopped_early = True
            self.model.stop_training = True
        if self.checkpoint_path is not None:
            write_checkpoint(self.checkpoint_path, self.model, optimizer, state)


def truncate_csv(path: Path, epochs: int) -> None:
    """Keep only the rows of the first ``epochs`` epochs (a resumed run rewrites the rest)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs]
    _atomic_write(path, lambda f: csv.writer(f).writerows(kept), newline="")


def _atomic_write(path: Path, write, newline=None) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline=newline) as f:
        write(f)


def read_metrics_csv(path: Path) -> dict[str, list[float]]:
    """Columns of ``metrics.csv`` as float lists (``epoch`` included)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def write_curves(csv_path: Path, png_path: Path) -> Path | None:
    """Plot every metric of ``metrics.csv`` (train and ``val_`` on one panel) to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not csv_path.is_file():
        return None
    columns = read_metrics_csv(csv_path)
    epochs = [e + 1 for e in columns.pop("epoch", [])]
    if not epochs:
        return None
    names = [k for k in columns if not k.startswith("val_")]
    fig = Figure(figsize=(4 * min(len(names), 3), 3 * math.ceil(len(names) / 3)), dpi=80)
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(math.ceil(len(names) / 3), min(len(names), 3), i + 1)
        ax.plot(epochs, columns[name], marker="o", label="train")
        if f"val_{name}" in columns:
            ax.plot(epochs, columns[f"val_{name}"], marker="o", label="val")
            ax.legend()
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return png_path
