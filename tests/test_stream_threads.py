"""How the stream engine picks the TFLite interpreter's threads: from the measured stage costs
and the core count (a pure rule, tested without timings), applied once after the first frames
unless the caller chose a number, and an interpreter rebuilt with other threads gives the
same outputs."""

from __future__ import annotations

import numpy as np
import pytest

import visionsuite
from visionsuite.streams.pipeline import THREADS_PROBE_FRAMES, choose_threads, cpu_cores
from visionsuite.testing import write_test_video

CLASSES = ("red", "green", "blue")


def test_choose_threads_uses_spare_cores_only():
    # the 2-core case: 50 ms of postprocess/render per frame -> a second thread
    # would only fight them
    assert choose_threads(40.0, 55.0, cores=2) == 1
    # cheap other stages leave the second core idle: use it
    assert choose_threads(40.0, 8.0, cores=2) == 2
    assert choose_threads(40.0, 8.0, cores=1) == 1
    assert choose_threads(40.0, 8.0, cores=16) == 4  # capped
    assert choose_threads(40.0, 8.0, cores=16, max_threads=2) == 2
    # a measurement taken with 2 threads is scaled back to one thread first
    assert choose_threads(23.0, 8.0, cores=2, current=2) == 2
    assert cpu_cores() >= 1


@pytest.fixture(scope="module")
def files(tmp_path_factory, save_tiny_classifier):
    from visionsuite.runtime import load_runtime

    root = tmp_path_factory.mktemp("threads")
    model = save_tiny_classifier(root / "tiny.keras", classes=CLASSES)
    load_runtime(model)
    return {"model": model, "video": write_test_video(root / "clip.mp4",
                                                      n=2 * THREADS_PROBE_FRAMES + 6)}


def test_engine_chooses_threads_unless_given(files, tmp_path):
    auto = visionsuite.run("classification", files["video"], model=files["model"])
    list(auto)
    choice = auto.stats["threads_choice"]
    assert choice is not None and choice["cores"] == cpu_cores() and choice["start"] == 1
    assert choice["chosen"] == choose_threads(choice["inference_ms"], choice["other_ms"],
                                              choice["cores"])
    if choice["chosen"] > 1:  # tried, then kept only when the model got 10 % faster
        kept = choice["tried_ms"] <= 0.9 * choice["inference_ms"]
        assert choice["threads"] == (choice["chosen"] if kept else 1)
    else:
        assert choice["threads"] == 1
    assert auto.model.threads == choice["threads"]
    given = visionsuite.run("classification", files["video"], model=files["model"], threads=1)
    list(given)
    assert given.stats["threads_choice"] is None and given.model.threads == 1


def test_set_threads_rebuilds_the_interpreter_with_the_same_outputs(files):
    from visionsuite.runtime import load_runtime

    net = load_runtime(files["model"], threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (1, *net.input_spec.shape)).astype(np.float32)
    before = net(x)
    net.set_threads(2)
    assert net.threads == 2 and "2 thread(s)" in net.describe()
    after = net(x)
    np.testing.assert_allclose(after["probabilities"], before["probabilities"], atol=1e-5)
    from visionsuite.errors import UsageError

    with pytest.raises(UsageError, match="Received: threads=0"):
        net.set_threads(0)
