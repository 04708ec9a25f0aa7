"""Per-source states in the stream engine (task contract v2): clips over a real video and a
live HTTP stream that reconnects, tiles stitched back, smoothing, and named outputs that are
the same on every runtime."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from toy_tasks import ClipCounters, ClipTask
from visionsuite.specs import InputSpec, OutputSpec

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian ffmpeg")


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    """The toy clip task's (untrained) model saved with v2 metadata, and its task."""
    from visionsuite.models import ModelMetadata, save_keras_model

    task = ClipTask(ClipTask.Config(frames=4, stride=2))
    model = task.build_model(None, ["right", "left"])
    meta = ModelMetadata(task=task.name, classes=("right", "left"), input_spec=task.input_spec(),
                         outputs=task.output_specs())
    path = save_keras_model(model, tmp_path_factory.mktemp("clip") / "clip.keras", meta)
    return task, path


def test_clip_task_over_a_real_video_gets_every_frame_into_its_window(clip_model):
    from visionsuite.samples import sample_video
    from visionsuite.streams.pipeline import run

    task, path = clip_model
    made, closed = ClipCounters.made, ClipCounters.closed
    stream = run(task, str(sample_video()), model=path, policy="queue")
    records = [r.record for r in stream]
    # carphone: 120 frames; windows of 4 frames every 2 frames: (120 - 4) / 2 + 1
    assert len(records) == 59
    for k, rec in enumerate(records):
        assert rec["frames"] == list(range(2 * k, 2 * k + 4))  # no frame lost in a window
    assert stream.states_created == [1]
    assert ClipCounters.made == made + 1 + 1  # the engine's probe state, then the stream's
    assert ClipCounters.closed == closed + 1  # dropped at the end of input


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_http(video, port):
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i",
         str(video), "-c:v", "mpeg2video", "-g", "5", "-q:v", "5", "-f", "mpegts", "-listen",
         "1", f"http://127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@needs_ffmpeg
def test_clip_state_restarts_when_a_live_stream_reconnects(clip_model, tmp_path):
    from visionsuite.errors import DataError
    from visionsuite.samples import sample_video
    from visionsuite.streams.pipeline import run

    task, path = clip_model
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_http(sample_video(), port)
    try:
        for _ in range(40):  # the server needs a moment to listen
            try:
                stream = run(task, url, model=path, policy="newest", reconnect=20,
                             reconnect_delay=0.2, reconnect_delay_max=1.0)
                break
            except DataError:
                time.sleep(0.25)
        records = []
        for result in stream:
            records.append(result.record)
            if len(records) == 6:
                server.kill()
                server.wait()
                server = serve_http(sample_video(), port)  # back, same address
            if len(records) >= 14:
                stream.stop("enough")
    finally:
        server.kill()
        server.wait()
    assert stream.states_created == [2]
    serials = sorted({r["state"] for r in records})
    assert len(serials) == 2
    before = [r for r in records if r["state"] == serials[0]]
    after = [r for r in records if r["state"] == serials[1]]
    assert len(before) >= 6 and after
    for rec in records:  # every window: 4 consecutive frames of one connection
        assert rec["frames"] == list(range(rec["frames"][0], rec["frames"][0] + 4))
    # no window mixes frames from before and after the outage
    assert min(r["frames"][0] for r in after) > max(r["frames"][-1] for r in before)


class _Echo:
    """A stand-in task whose prediction is the stitched outputs themselves."""

    def postprocess(self, outputs, meta, classes):
        return dict(outputs, meta=meta)


def test_tiles_stitch_back_exactly_without_seams():
    from visionsuite.streams.state import TiledState

    spec = InputSpec((8, 16, 16, 1), "DHWC")
    state = TiledState(_Echo(), "vol", spec, ["x"], overlap=0.25)
    volume = np.random.default_rng(0).uniform(0, 1, (21, 37, 30, 1)).astype(np.float32)
    got = None
    tiles = 0
    for tile, ctx in state.push(volume, {"frame": 0}):
        assert tile.shape == spec.shape
        tiles += 1
        # a "model" whose output is its input (per voxel) and one per-tile score
        got = state.merge({"x": tile, "score": np.array([tiles], np.float32)}, ctx)
        if tiles < ctx["tiles"]:
            assert got is None
    assert tiles > 1 and got is not None
    np.testing.assert_allclose(got["x"], volume, atol=1e-6)
    assert got["score"].shape == (1,)


def test_volume_smaller_than_a_tile_is_padded_and_cropped_back():
    from visionsuite.streams.state import TiledState

    state = TiledState(_Echo(), "vol", InputSpec((8, 16, 16, 1), "DHWC"), ["x"])
    volume = np.arange(5 * 10 * 16, dtype=np.float32).reshape(5, 10, 16, 1)
    items = list(state.push(volume, {}))
    assert len(items) == 1
    got = state.merge({"x": items[0][0]}, items[0][1])
    np.testing.assert_array_equal(got["x"], volume)


def test_frame_state_smooths_named_outputs_and_restarts_with_a_new_state():
    from visionsuite.streams.state import FrameState

    spec = InputSpec.image(8)
    state = FrameState(_Echo(), "cam", spec, ["a", "b"], smooth={"p": 0.5})
    first = state.merge({"p": np.array([1.0, 0.0])}, {})
    second = state.merge({"p": np.array([0.0, 1.0])}, {})
    np.testing.assert_allclose(first["p"], [1.0, 0.0])
    np.testing.assert_allclose(second["p"], [0.5, 0.5])
    fresh = FrameState(_Echo(), "cam", spec, ["a", "b"], smooth={"p": 0.5})
    np.testing.assert_allclose(fresh.merge({"p": np.array([0.0, 1.0])}, {})["p"], [0.0, 1.0])


def test_two_named_outputs_are_identical_on_keras_savedmodel_and_tflite(tmp_path):
    """Keras and SavedModel keep a dict model's outputs by name, TFLite by tensor index (in
    another order): every runtime must hand the task the same {name: array}."""
    import keras

    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite.runtime import load_runtime

    inputs = keras.Input((8, 8, 3), name="image")
    scores = keras.layers.Conv2D(2, 1, name="zz_scores")(inputs)
    boxes = keras.layers.Dense(4, name="aa_boxes")(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, {"scores": scores, "boxes": boxes})
    meta = ModelMetadata(task="toy_boxes", classes=("a",), input_spec=InputSpec.image(8),
                         outputs=(OutputSpec("scores"), OutputSpec("boxes")))
    path = save_keras_model(model, tmp_path / "two.keras", meta)
    x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    results = {rt: load_runtime(path, runtime=rt, batch_size=2)(x)
               for rt in ("keras", "savedmodel", "tflite")}
    for rt, out in results.items():
        assert list(out) == ["scores", "boxes"], rt
        assert out["scores"].shape == (3, 8, 8, 2) and out["boxes"].shape == (3, 4), rt
        np.testing.assert_allclose(out["scores"], results["keras"]["scores"], atol=1e-4)
        np.testing.assert_allclose(out["boxes"], results["keras"]["boxes"], atol=1e-4)


def test_padded_collate_batches_a_variable_number_of_boxes():
    import tensorflow as tf

    from visionsuite.data.collate import Padded
    from visionsuite.data.pipeline import make_tf_dataset
    from visionsuite.task import Dataset, Sample

    boxes = [np.zeros((n, 4), np.float32) + n for n in (0, 3, 1, 2)]
    data = Dataset(["box"], [Sample(np.zeros((4, 4, 3), np.uint8), b) for b in boxes])

    def to_arrays(out, sample):
        return out["image"], {"boxes": sample.target, "n": len(sample.target)}

    for max_len, width in ((None, 3), (5, 5)):
        ds = make_tf_dataset(data, output_signature=(
            tf.TensorSpec((4, 4, 3), tf.float32),
            {"boxes": Padded(tf.TensorSpec((None, 4), tf.float32), max_len=max_len),
             "n": tf.TensorSpec((), tf.int32)}), batch_size=4, training=False,
            to_arrays=to_arrays)
        _, target = next(iter(ds))
        got = target["boxes"].numpy()
        assert got.shape == (4, width, 4)
        for row, n in zip(got, target["n"].numpy()):
            assert (row[:n] == n).all() and (row[n:] == -1).all()


def test_frame_input_from_bgr_equals_the_task_preprocessing_of_the_rgb_frame():
    """The engine resizes the BGR frame and swaps the channels of the small image (cheaper);
    the model input must be exactly the task's ``preprocess`` of the RGB frame."""
    import cv2

    from visionsuite import samples
    from visionsuite.streams.state import to_model_input
    from visionsuite_tasks.classification.task import ClassificationTask

    frame = cv2.imread(str(samples.sample_photo("chelsea")))
    task = ClassificationTask()
    for spec in (InputSpec.image(96), InputSpec.image((64, 80))):
        x, meta = to_model_input(task, frame, spec)
        ref, ref_meta = task.preprocess(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), spec)
        assert x.dtype == np.float32 and x.shape == ref.shape
        np.testing.assert_array_equal(x, ref)
        assert meta == ref_meta

