"""The ``Task.open_source`` hook: a task that reads its own inputs (one frame per volume, with
``Frame.meta``) through ``run`` and ``predict``; other inputs keep the engine's sources."""

from __future__ import annotations

import time

import numpy as np
import pytest

from toy_tasks import VolumeTask
from visionsuite.errors import DataError
from visionsuite.streams.sources import Frame, Source
from visionsuite.streams.state import TiledState
from visionsuite.task import Task


class NpySource(Source):
    """Volumes saved as ``.npy``: one frame each, with ``meta["scale"]``."""

    kind = "npy"

    def open(self):
        try:
            self.volume = np.load(self.name)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {self.name}: {type(exc).__name__}") from None
        self.total = 1
        return self

    def frames(self, stop):
        yield Frame(self.source_id, 0, 0.0, time.perf_counter(), self.volume, self.name,
                    meta={"scale": 2.5})


class RecordingState(TiledState):
    seen: list = []

    def push(self, item, meta):
        RecordingState.seen.append(dict(meta))
        yield from super().push(item, meta)


class NpyVolumeTask(VolumeTask):
    def open_source(self, spec, source_id=0):
        return NpySource(str(spec), source_id) if str(spec).endswith(".npy") else None

    def new_state(self, source, spec, classes):
        return RecordingState(self, source, spec, classes, overlap=self.config.overlap)


@pytest.fixture(scope="module")
def volume_model(tmp_path_factory):
    from visionsuite.models import ModelMetadata, save_keras_model

    task = NpyVolumeTask()
    model = task.build_model(None, ["background", "cube"])
    meta = ModelMetadata(task=task.name, classes=("background", "cube"),
                         input_spec=task.input_spec(), outputs=task.output_specs())
    return save_keras_model(model, tmp_path_factory.mktemp("m") / "vol.keras", meta)


def test_default_hook_is_none():
    assert Task.open_source(VolumeTask(), "video.mp4") is None


def test_run_reads_a_task_source_and_passes_frame_meta_to_the_state(volume_model, tmp_path):
    from visionsuite.streams.pipeline import run

    path = tmp_path / "v.npy"
    np.save(path, np.random.default_rng(0).uniform(0, 1, (12, 20, 18, 1)).astype(np.float32))
    RecordingState.seen.clear()
    results = list(run(NpyVolumeTask(), [str(path)], model=str(volume_model),
                       runtime="keras", policy="queue"))
    assert len(results) == 1 and results[0].prediction.shape == [12, 20, 18]
    assert RecordingState.seen[0]["scale"] == 2.5 and RecordingState.seen[0]["path"] == str(path)


def test_predict_mixes_task_sources_and_images(volume_model, tmp_path):
    from visionsuite.predict import predict

    good = tmp_path / "a.npy"
    np.save(good, np.zeros((8, 16, 16, 1), np.float32))
    items = list(predict(NpyVolumeTask(), str(volume_model), [str(good)], runtime="keras"))
    assert [i.path for i in items] == [str(good)]
    bad = tmp_path / "b.npy"
    bad.write_text("not numpy")
    with pytest.raises(DataError, match="cannot read"):
        list(predict(NpyVolumeTask(), str(volume_model), [str(bad)], runtime="keras"))
