"""Shared fixtures: the out-of-tree ``toy`` task plugin (tests/toy_plugin) made visible
through a real entry point, its synthetic data, and tiny training configs.

Nothing here imports TensorFlow, so light tests stay light.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

TOY_PLUGIN = Path(__file__).parent / "toy_plugin"


def write_dist_info(folder: Path, name: str, entry_points: dict[str, str],
                    version: str = "0.1") -> Path:
    """Write ``<name>-<version>.dist-info`` with METADATA and ``visionsuite.tasks`` entry
    points into ``folder``: a distribution importlib.metadata finds on ``sys.path``."""
    dist = Path(folder) / f"{name}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[visionsuite.tasks]\n{lines}")
    return dist


@pytest.fixture(scope="session")
def dist_info_writer():
    """``write_dist_info(folder, name, entry_points)`` for tests that build plugin sets."""
    return write_dist_info


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory) -> Path:
    """A folder holding ``visionsuite_toy-0.1.dist-info`` (entry point ``toy``)."""
    site = tmp_path_factory.mktemp("toy_site")
    write_dist_info(site, "visionsuite_toy", {"toy": "visionsuite_toy:ToyTask"})
    return site


@pytest.fixture(scope="session")
def toy_env(toy_site) -> dict:
    """Environment for subprocesses that see the toy plugin through its entry point."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(toy_site), str(TOY_PLUGIN)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


@pytest.fixture
def toy_installed(toy_site):
    """The toy plugin importable and registered (entry point) in this process, for the
    duration of one test; ``sys.path`` is restored afterwards."""
    added = [str(toy_site), str(TOY_PLUGIN)]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        import visionsuite_toy

        yield visionsuite_toy
    finally:
        for p in added:
            sys.path.remove(p)
        importlib.invalidate_caches()


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    """48 synthetic 32x32 square/disc images as a toy ``.npz`` dataset."""
    sys.path.insert(0, str(TOY_PLUGIN))
    try:
        from visionsuite_toy import write_toy_dataset
    finally:
        sys.path.remove(str(TOY_PLUGIN))
    return write_toy_dataset(tmp_path_factory.mktemp("toy_data") / "toy.npz", n=48, size=32)


@pytest.fixture
def tiny_config(toy_data, tmp_path):
    """``tiny_config(**overrides)`` -> a TrainConfig for a ~1k-parameter model on toy data."""
    from visionsuite.config import TrainConfig

    def make(**overrides):
        values = dict(data=str(toy_data), backbone="simple_cnn",
                      backbone_args={"widths": (4, 8)}, task={"image_size": 32}, epochs=1,
                      batch_size=8, steps_per_epoch=2, runs_dir=str(tmp_path / "runs"),
                      name="run", progress=False, jit_compile=False)
        values.update(overrides)
        return TrainConfig(**values)

    return make


@pytest.fixture(scope="session")
def save_tiny_classifier():
    """``save(path, task="classification", classes=("red", "green", "blue"), size=32)``: a
    ~1k-parameter classification model on simple_cnn, saved as ``.keras`` with metadata."""

    def save(path, task="classification", classes=("red", "green", "blue"), size=32):
        import keras

        from visionsuite.backbones.registry import build_backbone
        from visionsuite.models import ModelMetadata, save_keras_model
        from visionsuite_tasks.classification import ClassificationConfig, ClassificationTask

        keras.utils.set_random_seed(0)
        cls_task = ClassificationTask(ClassificationConfig(image_size=size, top_k=2))
        model = cls_task.build_model(
            build_backbone("simple_cnn", (size, size, 3), widths=(4, 8)), classes)
        meta = ModelMetadata(task, tuple(classes), size, "simple_cnn",
                             {"image_size": size, "top_k": 2})
        return save_keras_model(model, path, meta)

    return save
