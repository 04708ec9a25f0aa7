"""The default model: MediaPipe selfie segmentation (from the mediapipe wheel) on real images.

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
from visionsuite_tasks.segmentation import SegmentationTask
from visionsuite_tasks.segmentation.pretrained import SelfieSegmenter


@pytest.fixture(scope="module")
def model():
    try:
        return SegmentationTask().default_model()
    except AssetError as exc:
        pytest.skip(str(exc))


def _predict(task, model, image_rgb):
    x, meta = task.preprocess(image_rgb, model.metadata.input_size)
    assert x.dtype == np.float32 and x.max() > 1.0  # visionsuite inputs are [0, 255]
    return task.postprocess(model.predict(x[None])[0], meta, model.metadata.classes)


def test_metadata_describes_a_segmentation_model(model):
    meta = model.metadata
    assert meta.task == "segmentation" and meta.classes == ("background", "person")
    assert meta.input_size == 256 and meta.extra["runtime"] == "tflite"
    assert "mediapipe==0.10.21" in meta.extra["source"]


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


def test_inputs_are_checked(model, tmp_path):
    with pytest.raises(ModelError, match=r"Received: shape=\(1, 128, 128, 3\)"):
        model.predict(np.zeros((1, 128, 128, 3), np.float32))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="bad.tflite"):
        SelfieSegmenter(bad)
