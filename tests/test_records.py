"""Model records: every training run writes git commit, resolved config, data fingerprint,
package versions and final metrics into the model's metadata; `visionsuite models` lists
models and shows one model's card; exported files carry the same record."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from visionsuite.records import data_fingerprint
from visionsuite.task import Dataset, Sample


def _write_folder_dataset(root, n_per_class=8, size=32):
    """Two classes of real PNG files: bright squares vs dark discs on noise."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("disc", "square")):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            if c:
                img[8:24, 8:24] = 230
            else:
                cv2.circle(img, (16, 16), 8, (230, 230, 230), -1)
            cv2.imwrite(str(root / name / f"{i}.png"), img)
    return root


def test_fingerprint_follows_files_and_sizes(tmp_path):
    data = _write_folder_dataset(tmp_path / "data")
    files = sorted(data.rglob("*.png"))
    ds = Dataset(["disc", "square"], [Sample(str(p), i % 2) for i, p in enumerate(files)])
    a, b = data_fingerprint(ds), data_fingerprint(ds)
    assert a == b and a["files"] == len(files) == a["samples"]
    assert a["bytes"] == sum(p.stat().st_size for p in files)
    files[0].write_bytes(files[0].read_bytes() + b"\0")  # one more byte in one file
    assert data_fingerprint(ds)["sha256"] != a["sha256"]
    fewer = Dataset(ds.classes, ds.samples[1:])
    assert data_fingerprint(fewer)["sha256"] != data_fingerprint(ds)["sha256"]
    arrays = Dataset(["a"], [Sample(np.zeros((4, 4, 3), np.uint8), 0)])
    changed = Dataset(["a"], [Sample(np.ones((4, 4, 3), np.uint8), 0)])
    assert data_fingerprint(arrays)["in_memory"] == 1
    assert data_fingerprint(arrays)["sha256"] != data_fingerprint(changed)["sha256"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 1-epoch classification run inside a fresh git repository (the working folder)."""
    import os

    from visionsuite.config import TrainConfig
    from visionsuite.plugins import get_task_class
    from visionsuite.training import train

    work = tmp_path_factory.mktemp("project")
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "config.yaml").write_text("epochs: 1\n")
    subprocess.run(["git", "-C", str(work), "add", "config.yaml"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "init"], check=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    data = _write_folder_dataset(work / "data")
    cls = get_task_class("classification")
    task = cls(cls.Config(image_size=32))
    config = TrainConfig(data=str(data), backbone="simple_cnn", backbone_args={"widths": (4, 8)},
                         task={"image_size": 32}, epochs=1, batch_size=8, val_fraction=0.25,
                         runs_dir=str(work / "runs"), name="rec", progress=False,
                         jit_compile=False)
    old = os.getcwd()
    os.chdir(work)
    try:
        result = train(task, config)
    finally:
        os.chdir(old)
    return result, commit, data


def test_training_writes_the_record_into_both_models(trained_run):
    from visionsuite.models import read_keras_metadata

    result, commit, data = trained_run
    metrics_json = json.loads((result.run_dir / "metrics.json").read_text())
    files = sorted(data.rglob("*.png"))
    for name in ("best.keras", "last.keras"):
        rec = read_keras_metadata(result.run_dir / name).record
        assert rec["git"] == {"commit": commit, "dirty": False}
        assert rec["config"]["backbone"] == "simple_cnn" and rec["config"]["epochs"] == 1
        assert rec["config"]["task"]["image_size"] == 32
        seen = rec["data"]["train"]["files"] + rec["data"]["val"]["files"]
        assert seen == len(files) and rec["data"]["val"]["samples"] == 4
        assert rec["data"]["train"]["bytes"] + rec["data"]["val"]["bytes"] == \
            sum(p.stat().st_size for p in files)
        assert rec["packages"]["tensorflow"].startswith("2.")
        assert rec["metrics"]["accuracy"] == pytest.approx(metrics_json["accuracy"])
        assert rec["metrics"]["best_epoch"] == metrics_json["best_epoch"]
    # the run also leaves a drift reference of its training images, with their labels
    from visionsuite.drift import DriftReference

    ref = DriftReference.load(result.run_dir / "drift_reference.json")
    assert ref.images == rec["data"]["train"]["samples"]
    assert set(ref.labels) == {"disc", "square"} and sum(ref.labels.values()) == pytest.approx(1)
    # the rewritten file is still a loadable model
    from visionsuite.models import load_keras_model

    assert load_keras_model(result.run_dir / "best.keras").output_shape[-1] == 2


def test_models_lists_and_shows_cards(trained_run, tmp_path):
    from visionsuite.cli import main

    result, commit, _ = trained_run
    (result.run_dir / "junk.keras").write_bytes(b"not a zip")
    runner = CliRunner()
    listing = runner.invoke(main, ["models", str(result.run_dir.parent)], catch_exceptions=False)
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.strip().splitlines()
    best = next(ln for ln in lines if ln.split()[0].endswith("best.keras"))
    assert "task=classification" in best and "classes=[disc, square]" in best
    assert "backbone=simple_cnn" in best and "accuracy=" in best and "MiB" in best
    assert any("junk.keras" in ln and "not a visionsuite model" in ln for ln in lines)
    as_json = runner.invoke(main, ["models", "--json", str(result.run_dir / "best.keras")])
    row = json.loads(as_json.stdout)
    assert row["commit"] == commit and row["classes"] == ["disc", "square"]

    card = runner.invoke(main, ["models", "show", str(result.run_dir / "best.keras")])
    assert card.exit_code == 0, card.output
    assert f"git commit:  {commit}" in card.stdout
    assert "accuracy: " in card.stdout and '"backbone": "simple_cnn"' in card.stdout
    missing = runner.invoke(main, ["models", "show", str(tmp_path / "nope.keras")])
    assert missing.exit_code == 2 and "Received:" in missing.stderr


@pytest.mark.slow
def test_exported_tflite_carries_the_same_record(trained_run, tmp_path):
    from visionsuite.export import export_model
    from visionsuite.models import read_keras_metadata
    from visionsuite.runtime.metadata import read_tflite_metadata

    result, _, _ = trained_run
    report = export_model(result.run_dir / "best.keras", "tflite", out=tmp_path / "m.tflite",
                          samples=2)
    assert read_tflite_metadata(report["export"]).record == \
        read_keras_metadata(result.run_dir / "best.keras").record
