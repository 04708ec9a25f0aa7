"""Letterboxed inputs, outputs -> detections in source pixels, class filters, records, and the
per-stream tracker + counters."""

import json

import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.boxes import Letterbox
from visionsuite_tasks.detection.nms import Detections
from visionsuite_tasks.detection.postprocess import (
    detection_records,
    detections_from_outputs,
    letterbox_input,
    parse_class_filter,
)
from visionsuite_tasks.detection.tracking import TrackAndCount

NAMES = ["person", "bicycle", "car"]


def test_outputs_map_back_to_source_pixels():
    frame = np.zeros((576, 768, 3), np.uint8)
    x, meta = letterbox_input(frame, (416, 416))
    assert x.shape == (416, 416, 3) and x.dtype == np.float32
    assert (meta["height"], meta["width"]) == (576, 768)
    json.dumps(meta)  # JSON-able (results files, states)
    lb = Letterbox.from_dict(meta["letterbox"])
    truth = np.array([[100, 50, 200, 300], [400, 100, 500, 200]], np.float32)
    boxes = np.concatenate([lb.to_input(truth), np.zeros((8, 4), np.float32)])
    scores = np.zeros((10, 3), np.float32)
    scores[0, 0], scores[1, 2] = 0.9, 0.6
    dets = detections_from_outputs({"boxes": boxes, "scores": scores}, meta, conf=0.5)
    np.testing.assert_allclose(dets.boxes, truth, atol=1e-3)
    assert dets.classes.tolist() == [0, 2]
    only_cars = detections_from_outputs({"boxes": boxes, "scores": scores}, meta, conf=0.5,
                                        classes=parse_class_filter("car", NAMES))
    assert only_cars.classes.tolist() == [2]
    with pytest.raises(UsageError, match="'boxes' and 'scores'"):
        detections_from_outputs({"probabilities": scores}, meta)


def test_class_filter_and_records():
    assert parse_class_filter("person, car", NAMES) == [0, 2]
    assert parse_class_filter(["bicycle", 0], NAMES) == [0, 1]
    assert parse_class_filter("", NAMES) is None
    with pytest.raises(UsageError, match="Did you mean: person"):
        parse_class_filter("persn", NAMES)
    with pytest.raises(UsageError, match="out of range"):
        parse_class_filter("7", NAMES)
    dets = Detections(np.array([[1.234, 2, 3, 4], [5, 6, 7, 8]], np.float32),
                      np.array([0.91234, 0.5], np.float32), np.array([2, 0], np.int32))
    recs = detection_records(dets, NAMES, track_ids=np.array([3, -1]))
    assert recs[0] == {"box": [1.23, 2.0, 3.0, 4.0], "score": 0.9123, "class": "car",
                       "track_id": 3}
    assert "track_id" not in recs[1] and recs[1]["class"] == "person"
    json.dumps(recs)


def test_track_and_count_keeps_low_score_continuations_and_counts():
    tc = TrackAndCount(line="0,100,200,100")
    shown_scores = []
    for k in range(40):  # an object moving down through the line; its score dips mid-way
        y = 40 + 3 * k
        score = 0.3 if 15 <= k < 20 else 0.9
        dets = Detections(np.array([[90, y, 110, y + 20]], np.float32),
                          np.array([score], np.float32), np.array([0], np.int32))
        shown, ids, info = tc.step(dets, conf=0.5)
        shown_scores += shown.scores.tolist()
        assert len(shown) == 1 and ids[0] == 1  # the low-score frames stay tracked and shown
    assert info["counts"] == {"in": 1, "out": 0}
    assert min(shown_scores) == pytest.approx(0.3)
