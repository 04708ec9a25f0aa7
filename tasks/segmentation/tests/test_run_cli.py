"""`visionsuite run segmentation` from the command line on the real sample clip, with the
default model (MediaPipe selfie segmentation): overlay opacity and temporal smoothing flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from visionsuite import samples
from visionsuite.assets import AssetError

CLI = [sys.executable, "-m", "visionsuite.cli"]


@pytest.fixture(scope="module")
def clip():
    try:
        return samples.sample_video("carphone_pristine")
    except AssetError as exc:
        pytest.skip(str(exc))


def run(*args):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([*CLI, "run", "segmentation", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def person_fractions(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(len(records)))
    return np.array([r["result"]["fractions"]["person"] for r in records])


def test_smoothing_flag_steadies_the_mask_over_time(clip, tmp_path):
    plain, smooth = tmp_path / "plain.jsonl", tmp_path / "smooth.jsonl"
    for out, extra in ((plain, []), (smooth, ["--smooth", "0.8"])):
        proc = run("--source", str(clip), "--max-frames", "40", "--alpha", "0.3",
                   "--results", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
    a, b = person_fractions(plain), person_fractions(smooth)
    assert len(a) == len(b) == 40
    assert 0.2 < a.mean() < 0.8  # a person fills a good part of the carphone frames
    # Smoothing averages class probabilities over time: smaller frame-to-frame changes.
    assert np.abs(np.diff(b)).mean() < np.abs(np.diff(a)).mean()


def test_bad_option_values_are_one_line_usage_errors(clip, tmp_path):
    proc = run("--source", str(clip), "--alpha", "2", "--results", str(tmp_path / "x.jsonl"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "alpha" in lines[0], proc.stderr
    proc = subprocess.run([*CLI, "run", "classification", "--source", str(clip), "--smooth", "0.5"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "has no option --smooth" in proc.stderr
    assert "--top-k" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
