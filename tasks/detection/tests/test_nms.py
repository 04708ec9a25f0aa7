"""Class-aware NMS against a brute-force reference."""

import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.nms import batched_non_max_suppression, non_max_suppression


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference(boxes, scores, conf, iou, max_det, classes=None, agnostic=False,
               multi_label=False):
    """Plain loops: candidates per (box, class), greedy suppression within each class."""
    cands = []
    for a in range(len(boxes)):
        s = scores[a].copy()
        if classes is not None:
            s[[c for c in range(len(s)) if c not in classes]] = 0
        pairs = [(c, s[c]) for c in range(len(s)) if s[c] >= conf] if multi_label else \
            [(int(np.argmax(s)), s.max())] if s.max() >= conf else []
        cands += [(float(sc), a, c) for c, sc in pairs]
    cands.sort(key=lambda t: -t[0])
    kept = []
    for sc, a, c in cands:
        if all(_iou(boxes[a], boxes[ka]) <= iou for _, ka, kc in kept
               if agnostic or kc == c):
            kept.append((sc, a, c))
    return kept[:max_det]


def _scene(rng, n=300, c=5):
    centres = rng.uniform(0, 600, (12, 2))
    pick = rng.integers(0, 12, n)
    xy = centres[pick] + rng.normal(0, 8, (n, 2))
    wh = rng.uniform(20, 60, (n, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, (n, c)).astype(np.float32) ** 3
    return boxes, scores


@pytest.mark.parametrize("kwargs", [dict(conf=0.2, iou=0.5), dict(conf=0.05, iou=0.3),
                                    dict(conf=0.2, iou=0.5, agnostic=True),
                                    dict(conf=0.3, iou=0.5, multi_label=True),
                                    dict(conf=0.1, iou=0.6, classes=[1, 3]),
                                    dict(conf=0.05, iou=0.5, max_det=7)])
def test_matches_the_brute_force_reference(kwargs):
    rng = np.random.default_rng(len(str(kwargs)))
    boxes, scores = _scene(rng)
    ref = _reference(boxes, scores, kwargs["conf"], kwargs["iou"], kwargs.get("max_det", 300),
                     kwargs.get("classes"), kwargs.get("agnostic", False),
                     kwargs.get("multi_label", False))
    got = non_max_suppression(boxes, scores, **kwargs)
    assert len(got) == len(ref) > 0
    np.testing.assert_allclose(got.scores, [r[0] for r in ref], rtol=1e-6)
    np.testing.assert_array_equal(got.classes, [r[2] for r in ref])
    np.testing.assert_allclose(got.boxes, boxes[[r[1] for r in ref]])
    if "classes" in kwargs:
        assert set(got.classes.tolist()) <= set(kwargs["classes"])


def test_overlapping_boxes_of_different_classes_both_survive():
    boxes = np.array([[10, 10, 50, 50], [11, 11, 51, 51], [12, 10, 50, 52]], np.float32)
    scores = np.array([[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]], np.float32)
    got = non_max_suppression(boxes, scores, conf=0.25, iou=0.5)
    assert got.classes.tolist() == [0, 1] and got.scores.tolist() == pytest.approx([0.9, 0.8])
    agnostic = non_max_suppression(boxes, scores, conf=0.25, iou=0.5, agnostic=True)
    assert len(agnostic) == 1


def test_batched_empty_and_bad_arguments():
    rng = np.random.default_rng(3)
    b1, s1 = _scene(rng)
    b2, s2 = _scene(rng)
    out = batched_non_max_suppression(np.stack([b1, b2]), np.stack([s1, s2 * 0]), conf=0.2)
    assert len(out) == 2 and len(out[0]) > 0 and len(out[1]) == 0
    assert out[1].boxes.shape == (0, 4)
    with pytest.raises(UsageError, match="Received: conf=2"):
        non_max_suppression(b1, s1, conf=2)
    with pytest.raises(UsageError, match="Received: classes"):
        non_max_suppression(b1, s1, classes=[9])
    with pytest.raises(UsageError, match="Received: boxes"):
        non_max_suppression(b1[:, :3], s1)


def test_large_candidate_sets_take_the_class_by_class_path(monkeypatch):
    import visionsuite_tasks.detection.nms as nms_module

    rng = np.random.default_rng(11)
    boxes, scores = _scene(rng, n=200)
    expected = non_max_suppression(boxes, scores, conf=0.05, iou=0.5, max_det=40)
    monkeypatch.setattr(nms_module, "MATRIX_MAX", 8)  # forces the loop and per-class paths
    got = non_max_suppression(boxes, scores, conf=0.05, iou=0.5, max_det=40)
    ref = _reference(boxes, scores, 0.05, 0.5, 40)
    assert len(got) == len(ref) == len(expected) == 40
    np.testing.assert_array_equal(got.classes, expected.classes)
    np.testing.assert_allclose(got.boxes, boxes[[r[1] for r in ref]])


def test_class_offsets_hold_for_boxes_with_negative_coordinates():
    # decoded boxes can leave the image; class 1's box must not suppress class 0's
    boxes = np.array([[0, 0, 100, 100], [-100, -100, -1, -1]], np.float32)
    scores = np.array([[0.9, 0.0], [0.0, 0.8]], np.float32)
    got = non_max_suppression(boxes, scores, conf=0.5, iou=0.5)
    assert got.classes.tolist() == [0, 1]
