"""tools/make_motion_clips.py: exact motion labels, deterministic by seed, readable splits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from visionsuite_tasks.activity.clips import load_video_dataset, read_frames

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("make_motion_clips",
                                                  ROOT / "tools" / "make_motion_clips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trajectories_match_their_labels(gen):
    for i in range(20):
        rng = np.random.default_rng(i)
        size, frames, radius = 64, 16, 6.0
        x, y, r, vis = gen._trajectory("move_right", rng, frames, size, radius)
        assert np.all(np.diff(x) > 0) and np.ptp(y) == 0 and vis.all()
        assert x.min() >= radius and x.max() <= size - radius
        x, _, _, _ = gen._trajectory("move_left", rng, frames, size, radius)
        assert np.all(np.diff(x) < 0) and x.min() >= radius and x.max() <= size - radius
        x, y, _, _ = gen._trajectory("circle", rng, frames, size, radius)
        d = np.hypot(x - x.mean(), y - y.mean())
        assert np.ptp(x) > 4 and np.ptp(y) > 4 and x.min() >= radius and y.max() <= size - radius
        x, y, r, _ = gen._trajectory("still", rng, frames, size, radius)
        assert np.ptp(x) < 1.5 and np.ptp(y) < 1.5 and np.ptp(r) == 0
        _, _, r, _ = gen._trajectory("grow", rng, frames, size, radius)
        assert np.all(np.diff(r) > 0) and r[-1] >= 1.8 * r[0] - 1e-9
        _, _, _, vis = gen._trajectory("blink", rng, frames, size, radius)
        assert vis.any() and not vis.all()
        assert d.std() < 0.35 * d.mean() + 1.0  # a circle-like path, not a line


def test_dataset_is_deterministic_by_seed_and_loads_as_a_video_dataset(gen, tmp_path):
    counts = {"train": 2, "val": 1, "test": 1}
    a = gen.make_dataset(tmp_path / "a", counts, size=32, frames=8, seed=5)
    b = gen.make_dataset(tmp_path / "b", counts, size=32, frames=8, seed=5)
    c = gen.make_dataset(tmp_path / "c", counts, size=32, frames=8, seed=6, codec="MJPG")
    for split in ("train", "val", "test"):
        ds = load_video_dataset(a, split=split, min_frames=8)
        assert ds.classes == sorted(gen.CLASSES) and not ds.skipped
        assert len(ds) == counts[split] * len(gen.CLASSES)
        assert all(s.image.num_frames == 8 for s in ds.samples)
    clip = "train/circle/000001"
    fa = read_frames(a / f"{clip}.mp4", range(8))
    np.testing.assert_array_equal(fa, read_frames(b / f"{clip}.mp4", range(8)))
    fc = read_frames(c / f"{clip}.avi", range(8))
    assert fc.shape == fa.shape and np.abs(fc.astype(int) - fa).mean() > 5
    csv_ds = load_video_dataset(a / "test.csv")
    assert sorted(csv_ds.classes) == sorted(gen.CLASSES) and len(csv_ds) == len(gen.CLASSES)
    info = json.loads((a / "info.json").read_text())
    assert info["seed"] == 5 and info["classes"] == list(gen.CLASSES)
    with pytest.raises(SystemExit, match="not empty; pass --overwrite"):
        gen.make_dataset(a, counts, size=32, frames=8)
