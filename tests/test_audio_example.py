"""examples/audio_task: a task plugin built outside the package (its own pyproject and
`visionsuite.tasks` entry point) that classifies synthetic sounds from log-mel spectrograms;
it passes check_task, learns, and imports nothing private from visionsuite."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "audio_task"


@pytest.fixture
def audio_installed(tmp_path, dist_info_writer):
    """The example importable and registered through a real entry point (as after
    `pip install -e examples/audio_task`)."""
    site = tmp_path / "site"
    dist_info_writer(site, "visionsuite_audio", {"audio": "visionsuite_audio:AudioTask"})
    added = [str(site), str(EXAMPLE)]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("visionsuite_audio")
    finally:
        for p in added:
            sys.path.remove(p)
        for name in [m for m in sys.modules if m.startswith("visionsuite_audio")]:
            del sys.modules[name]


def test_entry_point_in_its_own_pyproject():
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points."visionsuite.tasks"]' in text
    assert 'audio = "visionsuite_audio:AudioTask"' in text


def test_imports_only_public_visionsuite_names():
    """No `_private` module or name of visionsuite, and never the built-in tasks."""
    for path in (EXAMPLE / "visionsuite_audio").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("visionsuite"):
                assert not node.module.startswith("visionsuite_tasks"), (path, node.module)
                if node.module.startswith("visionsuite."):
                    assert not any(p.startswith("_") for p in node.module.split(".")), node.module
                    assert not any(a.name.startswith("_") for a in node.names), (path, node.module)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("visionsuite",):
                assert not node.attr.startswith("_")


def test_spectrograms_tell_the_sounds_apart(audio_installed):
    """An up-sweep's bright ridge rises over time, a down-sweep's falls, a tone's stays."""
    mod = audio_installed
    cfg = mod.AudioConfig(image_size=32)
    rng = np.random.default_rng(0)
    from visionsuite_audio.task import synthetic_clip

    def ridge_slope(kind):
        img = mod.log_mel_image(synthetic_clip(kind, rng, cfg.sample_rate, cfg.duration), cfg)
        rows = img[..., 0].argmax(axis=0)[4:-4]  # brightest band per time column (0 = top)
        return np.polyfit(np.arange(len(rows)), rows, 1)[0]

    assert ridge_slope("up") < -0.3 < 0.3 < ridge_slope("down")
    assert abs(ridge_slope("tone")) < 0.3


def test_check_task_passes(audio_installed, tmp_path):
    from visionsuite.testing import check_task

    result = check_task("audio", image_size=32, workdir=tmp_path, classes=("down", "tone", "up"))
    assert result["predictions"] > 0
    assert result["parity"]["max_abs_diff"] < 1e-4
