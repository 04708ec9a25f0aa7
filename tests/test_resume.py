"""A run killed (SIGKILL) after epoch 2 resumes at epoch 3 with its optimizer state."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    import keras
    from visionsuite.config import TrainConfig
    from visionsuite.training import train
    from visionsuite_toy import ToyTask

    class KillAfterEpoch2(keras.callbacks.Callback):
        # Runs after the engine's own callbacks, i.e. after the epoch-2 checkpoint is written.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    train(ToyTask(), TrainConfig(**json.loads(sys.argv[1])), callbacks=[KillAfterEpoch2()])
""")


@pytest.mark.parametrize("freeze_epochs", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_killed_run_resumes_at_epoch_3(freeze_epochs, toy_installed, tiny_config, toy_env,
                                       tmp_path):
    from visionsuite.config import to_dict
    from visionsuite.training import train
    from visionsuite.training.checkpoint import read_checkpoint

    # freeze_epochs=1: killed one epoch into fine-tuning, whose optimizer started at epoch 2.
    config = tiny_config(epochs=4, steps_per_epoch=3, optimizer="sgd", schedule="cosine",
                         freeze_epochs=freeze_epochs)
    phase_start = freeze_epochs
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(to_dict(config))],
                          env=toy_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = tmp_path / "runs" / "toy" / "run"
    ckpt = read_checkpoint(run_dir / "checkpoint.npz")
    assert ckpt.state.epoch == 2 and ckpt.state.phase == ("finetune" if freeze_epochs else "full")
    assert not (run_dir / "last.keras").exists()  # the run really died before finishing
    (run_dir / ".checkpoint.abc123.tmp").write_bytes(b"half-written")  # as a kill mid-write leaves

    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["iterations"] = int(self.model.optimizer.iterations)
            seen["weights"] = [w.copy() for w in self.model.get_weights()]

        def on_epoch_begin(self, epoch, logs=None):
            seen.setdefault("epochs", []).append(epoch)

    from dataclasses import replace

    result = train(toy_installed.ToyTask(), replace(config, resume=True), callbacks=[Probe()])
    assert seen["epochs"] == [2, 3]  # epochs 3 and 4 (0-based 2, 3)
    assert seen["iterations"] == (2 - phase_start) * 3  # the killed run's optimizer steps
    for restored, saved in zip(seen["weights"], ckpt.model_weights):
        np.testing.assert_array_equal(restored, saved)
    assert result.state.epoch == 4
    assert int(read_checkpoint(run_dir / "checkpoint.npz").optimizer_store["0"]) == (4 - phase_start) * 3
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1", "2", "3"]
    assert (run_dir / "last.keras").is_file() and (run_dir / "best.keras").is_file()
    assert not list(run_dir.glob(".*"))  # stale temporary files were cleaned up
