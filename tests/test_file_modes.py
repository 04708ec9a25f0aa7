"""Files written atomically get the permissions a plain ``open()`` gives (0666 less the
umask: 0644 normally), and the hidden temporary files a killed run leaves are removed the next
time any run starts in that folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask):
    from visionsuite.files import current_umask, default_mode

    assert current_umask() == umask and default_mode() == 0o666 & ~umask
    assert os.umask(umask) == umask  # unchanged by the read


def test_every_atomic_writer_respects_the_umask(umask, tmp_path):
    import keras

    from visionsuite.files import atomic_path, write_json_atomic
    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite.runtime.convert import write_tflite
    from visionsuite.training.callbacks import truncate_csv, write_curves
    from visionsuite.training.checkpoint import RunState, write_checkpoint

    expected = 0o666 & ~umask
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    written = [
        write_json_atomic(tmp_path / "a.json", {"x": 1}),
        save_keras_model(model, tmp_path / "best.keras", ModelMetadata("toy", ("a", "b"), 3)),
        write_checkpoint(tmp_path / "checkpoint.npz", model, model.optimizer, RunState(epoch=1)),
        write_tflite(tmp_path / "m.tflite", b"TFL3 not really"),
    ]
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.5,0.6\n")
    os.chmod(csv, 0o600)  # as the old writer left it
    truncate_csv(csv, 1)
    written.append(csv)
    written.append(write_curves(csv, tmp_path / "curves.png"))
    with atomic_path(tmp_path / "other.bin") as tmp:
        tmp.write_bytes(b"x")
    written.append(tmp_path / "other.bin")
    for path in written:
        assert mode(path) == expected, (path.name, oct(mode(path)))
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_atomic_path_removes_the_temporary_file_on_error(tmp_path):
    from visionsuite.files import atomic_path

    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "keep.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "keep.txt").read_text() == "old" and not list(tmp_path.glob(".*"))


def test_training_outputs_are_0644_and_stale_temps_go_on_a_fresh_start(toy_installed,
                                                                      tiny_config, tmp_path):
    from visionsuite.training import train

    previous = os.umask(0o022)
    try:
        run_dir = tmp_path / "runs" / "toy" / "run"
        run_dir.mkdir(parents=True)
        # what a run killed by SIGKILL before its first checkpoint leaves
        stale = [run_dir / ".checkpoint.npz.k1a2b3.tmp", run_dir / ".best.keras.x9y8.tmp.keras",
                 run_dir / ".curves.abc.png"]
        for path in stale:
            path.write_bytes(b"\0" * 1024)
        result = train(toy_installed.ToyTask(), tiny_config(epochs=1))
    finally:
        os.umask(previous)
    assert result.run_dir == run_dir  # not refused as "already exists"
    assert not any(p.exists() for p in stale)
    for name in ("best.keras", "last.keras", "checkpoint.npz", "curves.png", "metrics.csv",
                 "metrics.json", "config.yaml"):
        assert mode(run_dir / name) == 0o644, name
