"""Drift monitoring: `visionsuite run --drift REF` on a real clip (carphone) whose second
half is darkened or blurred raises an alarm within a few frames of the change; the unmodified
clip raises none. Alarms land in the stats file and in a JSON-lines file with frame ranges."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from visionsuite.drift import DriftReference, build_reference, psi

CHANGE_AT = 60  # first modified frame
WITHIN = 15  # frames after the change by which the alarm must be raised


def test_psi_and_reference_basics(tmp_path):
    p = np.array([0.2, 0.3, 0.5])
    assert psi(p, p) == pytest.approx(0.0, abs=1e-9)
    assert psi(p, [0.5, 0.3, 0.2]) > psi(p, [0.25, 0.3, 0.45]) > 0
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(12)]
    ref = build_reference(images, labels=["a"] * 9 + ["b"] * 3)
    assert ref.images == 12 and ref.labels == {"a": 0.75, "b": 0.25}
    assert sum(ref.shares["brightness"]) == pytest.approx(1.0)
    path = ref.save(tmp_path / "ref.json")
    assert DriftReference.load(path) == ref
    (tmp_path / "bad.json").write_text('{"edges": {}}')
    from visionsuite.errors import DataError

    with pytest.raises(DataError, match="not a drift reference"):
        DriftReference.load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The carphone clip re-encoded as is, with its second half darkened, and blurred."""
    from visionsuite import samples

    root = tmp_path_factory.mktemp("drift")
    cap = cv2.VideoCapture(str(samples.sample_video("carphone_pristine")))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    changes = {"orig": lambda f: f, "dark": lambda f: (f * 0.45).astype(np.uint8),
               "blur": lambda f: cv2.GaussianBlur(f, (0, 0), 3)}
    out = {}
    for name, change in changes.items():
        path = root / f"{name}.avi"
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
        for i, f in enumerate(frames):
            writer.write(change(f) if i >= CHANGE_AT else f)
        writer.release()
        out[name] = path
    return out, len(frames), root


@pytest.fixture(scope="module")
def model(clips):
    from test_export import colour_images, tiny_classifier

    _, _, root = clips
    return tiny_classifier(root / "tiny.keras", colour_images(root / "calib", n=8))


def _run(source, model, ref, out):
    from visionsuite.cli import main

    result = CliRunner().invoke(main, ["run", "classification", "--source", str(source),
                                       "--model", str(model), "--drift", str(ref),
                                       "--results", str(out)])
    assert result.exit_code == 0, result.output
    stats = json.loads(out.with_name(out.name + ".stats.json").read_text())
    log = out.with_name(out.name + ".drift.jsonl")
    alarms = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert alarms == stats["drift"]["alarms"]
    return stats, alarms, result.stderr


def test_clip_drift_alarms(clips, model, tmp_path):
    from visionsuite.cli import main

    paths, n_frames, _ = clips
    ref = tmp_path / "ref.json"
    made = CliRunner().invoke(main, ["drift-reference", str(paths["orig"]), "--out", str(ref)])
    assert made.exit_code == 0, made.output
    assert DriftReference.load(ref).images == n_frames

    stats, alarms, _ = _run(paths["orig"], model, ref, tmp_path / "orig.jsonl")
    assert stats["frames"] == n_frames and alarms == []
    assert max(stats["drift"]["max_psi"].values()) < stats["drift"]["threshold"]

    for name, expected in (("dark", {"brightness", "contrast", "colour"}),
                           ("blur", {"sharpness", "contrast"})):
        stats, alarms, stderr = _run(paths[name], model, ref, tmp_path / f"{name}.jsonl")
        assert alarms, f"{name}: no alarm (max PSI {stats['drift']['max_psi']})"
        first = alarms[0]
        assert CHANGE_AT <= first["last_frame"] <= CHANGE_AT + WITHIN, first
        assert first["first_frame"] <= first["last_frame"] and first["psi"] > first["threshold"]
        assert set(first["over"]) & expected, first
        assert "drift alarm" in stderr
