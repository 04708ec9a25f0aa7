"""An out-of-tree task plugin (tests/toy_plugin) registered through a real entry point — a
``visionsuite_toy-0.1.dist-info`` on PYTHONPATH — listed and trained from the CLI, next to a
broken plugin and a duplicate name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "visionsuite")


def _cli(args, env, timeout=300):
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def plugin_env(toy_env, dist_info_writer, tmp_path):
    """The toy plugin plus a broken one (module missing) and a duplicate ``toy``."""
    site = tmp_path / "site"
    dist_info_writer(site, "visionsuite_broken", {"broken": "visionsuite_missing_module:Task"})
    dist_info_writer(site, "visionsuite_dupe", {"toy": "visionsuite_toy.task:ToyPrediction"})
    return dict(toy_env, PYTHONPATH=os.pathsep.join([toy_env["PYTHONPATH"], str(site)]))


def test_tasks_lists_toy_and_reports_broken_and_duplicate(plugin_env):
    proc = _cli(["tasks"], plugin_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    by_name = {line.split()[0]: line for line in lines if line.strip() and "(duplicate)" not in line}
    # The toy distribution comes first on PYTHONPATH, so its `toy` wins over the duplicate.
    assert "visionsuite_toy 0.1" in by_name["toy"] and "npz" in by_name["toy"]
    assert "classification" in by_name and "BROKEN" not in by_name["classification"]
    broken = by_name["broken"]
    assert "BROKEN" in broken and "visionsuite_missing_module" in broken
    assert sum("visionsuite_missing_module" in line for line in lines) == 1  # one line
    dupes = [line for line in lines if "duplicate name 'toy'" in line]
    assert len(dupes) == 1 and "visionsuite_dupe" in dupes[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_train_and_evaluate_toy_from_the_cli(toy_env, toy_data, tmp_path):
    runs = tmp_path / "runs"
    proc = _cli(["train", "toy", "--data", str(toy_data), "--epochs", "2", "--batch-size", "8",
                 "--name", "cli", "--runs-dir", str(runs), "--image-size", "32",
                 "--set", "backbone_args={widths: [4, 8]}", "--set", "steps_per_epoch=2",
                 "--set", "progress=false", "--set", "task.label_smoothing=0.05"], toy_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = runs / "toy" / "cli"
    assert f"run directory: {run_dir}" in proc.stdout
    assert "accuracy:" in proc.stdout
    for name in ("config.yaml", "run.yaml", "metrics.csv", "curves.png", "best.keras",
                 "last.keras", "checkpoint.npz", "metrics.json", "logs"):
        assert (run_dir / name).exists(), name
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert "label_smoothing: 0.05" in (run_dir / "config.yaml").read_text()

    out = tmp_path / "eval"
    proc = _cli(["evaluate", "toy", "--model", str(run_dir / "best.keras"), "--data",
                 str(toy_data), "--out", str(out)], toy_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["samples"] == 48
    assert "samples: 48" in proc.stdout

