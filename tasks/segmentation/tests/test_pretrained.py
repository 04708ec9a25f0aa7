"""The default model: MediaPipe selfie segmentation (from the mediapipe wheel) on real images,
converted once into a visionsuite .tflite model and run by the TFLite runtime.

Needs the cached files (``tools/fetch_samples.py``); skipped with the reason when they are
neither cached nor downloadable.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionsuite import samples
from visionsuite.assets import AssetError
from visionsuite.data.images import read_image
from visionsuite.errors import ModelError
from visionsuite.runtime import load_runtime
from visionsuite_tasks.segmentation import SegmentationTask
from visionsuite_tasks.segmentation.pretrained import (SELFIE_INPUT_SCALE,
                                                       selfie_segmentation_model)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    try:
        path = selfie_segmentation_model(out=tmp_path_factory.mktemp("m") / "selfie.tflite")
    except AssetError as exc:
        pytest.skip(str(exc))
    return load_runtime(path)


def _predict(task, model, image_rgb):
    x, meta = task.preprocess(image_rgb, model.input_spec)
    assert x.dtype == np.float32 and x.max() > 1.0  # visionsuite inputs are [0, 255]
    outputs = {k: v[0] for k, v in model(x[None]).items()}
    return task.postprocess(outputs, meta, model.metadata.classes)


def test_default_model_is_a_segmentation_model_for_the_runtime(model):
    meta = model.metadata
    assert meta.task == "segmentation" and meta.classes == ("background", "person")
    assert meta.input_size == 256 and model.runtime == "tflite"
    assert "mediapipe==0.10.21" in meta.extra["source"]


def test_converted_model_matches_mediapipe_on_scaled_input(model):
    from ai_edge_litert.interpreter import Interpreter

    image = read_image(samples.sample_photo("astronaut"))
    x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)[None]
    original = Interpreter(model_path=str(samples.selfie_segmentation_tflite()))
    original.allocate_tensors()
    original.set_tensor(original.get_input_details()[0]["index"], x * SELFIE_INPUT_SCALE)
    original.invoke()
    expected = original.get_tensor(original.get_output_details()[0]["index"])
    got = model(x)["probabilities"]
    assert got.shape == (1, 256, 256, 1)
    assert expected.max() > 0.9  # a real person in the picture
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_person_mask_on_the_astronaut_photo(model):
    task = SegmentationTask()
    image = read_image(samples.sample_photo("astronaut"))  # 512x512 portrait
    pred = _predict(task, model, image)
    assert pred.mask.shape == image.shape[:2]
    assert 0.35 < pred.fractions[1] < 0.75
    assert pred.mask[200:260, 200:260].mean() > 0.95  # her face
    assert pred.mask[:60, :60].mean() < 0.05  # the flag, top-left
    assert task.to_record(pred)["dominant"] == "person"


def test_person_mask_on_a_real_video_frame(model):
    try:
        video = samples.sample_video("carphone_pristine")
    except AssetError as exc:
        pytest.skip(str(exc))
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    cap.release()
    assert ok
    task = SegmentationTask()
    pred = _predict(task, model, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    assert pred.mask.shape == frame.shape[:2]
    assert 0.25 < pred.fractions[1] < 0.7  # a man in a car, close up
    overlay = task.render(frame, pred)
    changed = np.abs(overlay.astype(int) - frame.astype(int)).sum(-1) > 0
    assert changed[pred.mask == 1].mean() > 0.9


def test_conversion_is_cached_and_bad_files_fail_clearly(model, tmp_path):
    path = selfie_segmentation_model(out=tmp_path / "s.tflite")
    stamp = path.stat().st_mtime_ns
    assert selfie_segmentation_model(out=path).stat().st_mtime_ns == stamp  # reused
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ModelError, match="bad.tflite"):
        selfie_segmentation_model(source=bad, out=tmp_path / "out.tflite")
