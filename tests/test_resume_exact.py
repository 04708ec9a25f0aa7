"""A resumed run is the same run: killed after epoch 2 and resumed, a classification run
matches an uninterrupted 3-epoch run within float noise (same data order, same augmentation,
same dropout masks). Also: ``--resume`` of a run without a checkpoint starts it from scratch,
and a run that fails on its data leaves no empty run folder behind."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")


class Killed(Exception):
    """Stands for SIGKILL right after a checkpoint (the engine's callbacks run first)."""


class KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise Killed()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """24 random 40x40 PNGs in two class folders (not square to the model: the augmentation
    crops, flips and jitters them)."""
    import cv2

    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(3)
    for c, name in enumerate(("dark", "light")):
        (root / name).mkdir()
        for i in range(12):
            img = rng.integers(0, 120, (40, 40, 3)) + 100 * c
            cv2.imwrite(str(root / name / f"{i:02d}.png"), img.astype(np.uint8))
    return root


def _config(image_folder, runs, **kw):
    from visionsuite.config import TrainConfig

    values = dict(data=str(image_folder), backbone="simple_cnn",
                  backbone_args={"widths": (4, 8)},
                  task={"image_size": 32, "augment": 0.8, "dropout": 0.3}, epochs=3,
                  batch_size=5, optimizer="adam", learning_rate=0.01, runs_dir=str(runs),
                  name="run", progress=False, jit_compile=False, seed=7)
    values.update(kw)
    return TrainConfig(**values)


def _task(config):
    from visionsuite.config import build_config
    from visionsuite_tasks.classification import ClassificationTask

    return ClassificationTask(build_config(ClassificationTask.Config, config.task))


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("steps_per_epoch", [None, pytest.param(3, marks=pytest.mark.slow)])
def test_killed_and_resumed_run_matches_an_uninterrupted_one(image_folder, tmp_path,
                                                             steps_per_epoch):
    from visionsuite.training import train
    from visionsuite.training.checkpoint import read_checkpoint

    whole = _config(image_folder, tmp_path / "a", steps_per_epoch=steps_per_epoch)
    train(_task(whole), whole)

    cut = _config(image_folder, tmp_path / "b", steps_per_epoch=steps_per_epoch)
    with pytest.raises(Killed):
        train(_task(cut), cut, callbacks=[KillAfterEpoch(2)])
    run_a, run_b = (tmp_path / d / "classification" / "run" for d in ("a", "b"))
    assert read_checkpoint(run_b / "checkpoint.npz").state.epoch == 2
    resumed = dataclasses.replace(cut, resume=True)
    train(_task(resumed), resumed)

    a, b = _rows(run_a), _rows(run_b)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == ["0", "1", "2"]
    for ra, rb in zip(a, b):
        for key in ("loss", "val_loss", "accuracy", "learning_rate"):
            np.testing.assert_allclose(float(rb[key]), float(ra[key]), rtol=1e-4, atol=1e-6,
                                       err_msg=f"epoch {ra['epoch']} {key}")
    wa = read_checkpoint(run_a / "checkpoint.npz").model_weights
    wb = read_checkpoint(run_b / "checkpoint.npz").model_weights
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


def test_resume_without_checkpoint_starts_from_scratch(image_folder, tmp_path, caplog):
    from visionsuite.training import train

    config = _config(image_folder, tmp_path, epochs=1, resume=True, name="died-early")
    run_dir = tmp_path / "classification" / "died-early"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("epochs: 1\n")  # what a run killed while reading leaves
    with caplog.at_level("WARNING", logger="visionsuite"):
        result = train(_task(config), config)
    assert "starting it from scratch" in caplog.text
    assert result.state.epoch == 1 and (run_dir / "checkpoint.npz").is_file()


def test_data_errors_leave_no_run_folder(tmp_path):
    from visionsuite.errors import DataError
    from visionsuite.training import train

    empty = tmp_path / "empty"
    empty.mkdir()
    config = _config(empty, tmp_path / "runs", epochs=1)
    with pytest.raises(DataError):
        train(_task(config), config)
    assert not (tmp_path / "runs").exists()
