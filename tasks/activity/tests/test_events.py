"""Events from per-frame probabilities: hysteresis, switching, background labels, the JSON
lines sink (restarts, close), segment precision / recall at temporal IoU 0.5."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite.streams.pipeline import StreamResult
from visionsuite_tasks.activity.events import (
    Event,
    EventDetector,
    EventsSink,
    detect_events,
    segment_precision_recall,
    temporal_iou,
    top_k,
)

CLASSES = ["still", "walk", "wave"]


def _p(label, score):
    """A probability vector with ``score`` on ``label`` and the rest spread evenly."""
    p = np.full(3, (1.0 - score) / 2)
    p[CLASSES.index(label)] = score
    return p


def _sequence():
    seq = [_p("still", 0.9)] * 3                   # 0-2 background
    seq += [_p("walk", 0.8)] * 10                  # 3-12 walk
    seq += [_p("wave", 0.7)] * 2                   # 13-14 flicker: too short to switch
    seq += [_p("walk", 0.5)] * 3                   # 15-17 walk between off and on: stays on
    seq += [_p("walk", 0.95)]                      # 18 peak
    seq += [_p("wave", 0.9)] * 6                   # 19-24 wave wins -> switch at 21
    seq += [_p("still", 0.9)] * 5                  # 25-29 wave gone -> ends at 24
    return np.stack(seq)


def test_hysteresis_events_and_smoothed_label():
    det = EventDetector(CLASSES, on=0.6, off=0.4, min_frames=3, background=["still"], fps=10)
    closed, labels = [], []
    for i, p in enumerate(_sequence()):
        closed += det.update(p, frame=i)
        labels.append(det.active)
    assert labels[:5] == [None] * 5 and labels[5] == "walk"       # walk needs 3 frames
    assert labels[13:18] == ["walk"] * 5                          # flicker and dip ignored
    assert labels[20] == "walk" and labels[21] == "wave"          # switch after 3 wave frames
    assert labels[27] is None                                     # 3 frames below off
    assert [e.to_json() for e in closed] == [
        {"label": "walk", "start_frame": 3, "end_frame": 18, "start_time": 0.3,
         "end_time": 1.8, "score": 0.95, "frames": 16},     # last frame at or above `off`
        {"label": "wave", "start_frame": 19, "end_frame": 24, "start_time": 1.9,
         "end_time": 2.4, "score": 0.9, "frames": 6},
    ]
    assert det.flush() == []


def test_flush_closes_the_open_event_and_detect_events_is_the_offline_form():
    seq = _sequence()[:12]
    events = detect_events(seq, CLASSES, background=["still"], min_frames=3)
    assert [(e.label, e.start_frame, e.end_frame) for e in events] == [("walk", 3, 11)]
    assert events[0].start_time is None
    # without background, "still" is an event too; min_frames=1 reacts at once
    events = detect_events(seq, CLASSES, min_frames=1, frames=range(100, 112), fps=4)
    assert [(e.label, e.start_frame, e.end_frame) for e in events] == [
        ("still", 100, 102), ("walk", 103, 111)]
    assert events[1].start_time == pytest.approx(103 / 4)


def test_top_k_and_bad_options():
    assert top_k([0.1, 0.7, 0.2], CLASSES, k=2) == [{"label": "walk", "score": 0.7},
                                                   {"label": "wave", "score": 0.2}]
    with pytest.raises(UsageError, match="Received: on=0.3, off=0.5"):
        EventDetector(CLASSES, on=0.3, off=0.5)
    with pytest.raises(UsageError, match="background"):
        EventDetector(CLASSES, background=["run"])
    with pytest.raises(UsageError, match="expected 3 class probabilities"):
        EventDetector(CLASSES).update([0.5, 0.5])


def _result(sid, index, probs, source="cam"):
    return StreamResult(source=f"{source}{sid}", source_id=sid, index=index,
                        timestamp=index / 10, prediction=types.SimpleNamespace(probabilities=probs),
                        record={}, latency=0.01)


def test_events_sink_writes_json_lines_per_source_and_closes_open_events(tmp_path):
    sink = EventsSink(tmp_path / "events.jsonl", CLASSES, background=["still"], min_frames=2)
    seq = _sequence()
    for i, p in enumerate(seq[:12]):       # source 0: walk, still open at the restart
        sink.write(_result(0, i, p))
        sink.write(_result(1, i, seq[-1]))  # source 1: background only -> no events
    for i, p in enumerate(seq[3:8]):      # source 0 restarts (reconnect): walk closed first
        sink.write(_result(0, i, p))
    sink.close()
    sink.close()  # idempotent
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines == [
        {"source": "cam0", "label": "walk", "start_frame": 3, "end_frame": 11,
         "start_time": 0.3, "end_time": 1.1, "score": 0.8, "frames": 9},
        {"source": "cam0", "label": "walk", "start_frame": 0, "end_frame": 4,
         "start_time": 0.0, "end_time": 0.4, "score": 0.8, "frames": 5},
    ]
    assert sink.events == 2 and sink.needs_frame is False


def test_segment_precision_recall_at_temporal_iou():
    assert temporal_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    truth = [("walk", 0, 20), ("wave", 30, 40), ("walk", 50, 60)]
    predicted = [Event("walk", 2, 19, None, None, 0.9),      # IoU 18/21: hit
                 Event("wave", 35, 50, None, None, 0.8),     # IoU 6/21: miss
                 Event("walk", 0, 20, None, None, 0.5),      # duplicate of a matched one
                 Event("walk", 52, 60, None, None, 0.7)]     # IoU 9/11: hit
    scores = segment_precision_recall(predicted, truth, iou=0.5)
    assert scores == {"precision": 0.5, "recall": 2 / 3, "true_positives": 2.0}
