"""Detection metrics: our report equals pycocotools' own COCOeval run from files."""

import contextlib
import io
import json

import numpy as np
import pytest

from visionsuite_tasks.detection.metrics import STAT_NAMES, confusion_matrix, evaluate_detections
from visionsuite_tasks.detection.nms import Detections

CLASSES = ["circle", "square", "triangle"]


def _known_set(seed=0, n_images=12):
    """Ground truth plus predictions: jittered true boxes (some misses, some wrong classes),
    false positives, a few sizes (small/medium/large), one negative image."""
    rng = np.random.default_rng(seed)
    targets, dets = [], []
    for k in range(n_images):
        n = 0 if k == 3 else int(rng.integers(1, 6))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.choice([12.0, 50.0, 150.0], (n, 1)) * rng.uniform(0.7, 1.3, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        cls = rng.integers(0, 3, n)
        targets.append({"boxes": boxes.astype(np.float32), "classes": cls, "size": (600, 600)})
        found = rng.random(n) > 0.2
        pb = boxes[found] + rng.normal(0, 3, (found.sum(), 4))
        pc = np.where(rng.random(found.sum()) < 0.1, (cls[found] + 1) % 3, cls[found])
        ps = rng.uniform(0.3, 1.0, found.sum())
        m = int(rng.integers(0, 4))  # false positives
        fxy = rng.uniform(0, 400, (m, 2))
        fb = np.concatenate([fxy, fxy + rng.uniform(10, 100, (m, 2))], 1)
        dets.append(Detections(np.concatenate([pb, fb]).astype(np.float32),
                               np.concatenate([ps, rng.uniform(0.05, 0.6, m)]).astype(np.float32),
                               np.concatenate([pc, rng.integers(0, 3, m)]).astype(np.int32)))
    return targets, dets


def _pycocotools_from_files(tmp_path, targets, dets, cat_ids=None):
    """pycocotools run the documented way: annotation JSON file + results JSON file."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [{"id": k + 1, "width": 600, "height": 600, "file_name": f"{k}.png"}
                     for k in range(len(targets))],
          "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
          "annotations": []}
    res = []
    for k, (t, d) in enumerate(zip(targets, dets)):
        for b, c in zip(t["boxes"].tolist(), t["classes"].tolist()):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": k + 1,
                                      "category_id": c + 1, "iscrowd": 0,
                                      "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                      "area": (b[2] - b[0]) * (b[3] - b[1])})
        for b, s, c in zip(d.boxes.tolist(), d.scores.tolist(), d.classes.tolist()):
            res.append({"image_id": k + 1, "category_id": c + 1, "score": s,
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(coco, coco.loadRes(str(tmp_path / "res.json")), "bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_report_equals_pycocotools_stats_and_per_class_ap(tmp_path):
    targets, dets = _known_set()
    report = evaluate_detections(targets, dets, CLASSES, out_dir=tmp_path / "eval")
    ref = _pycocotools_from_files(tmp_path, targets, dets)
    got = [report["metrics"][n] for n in STAT_NAMES]
    np.testing.assert_allclose(got, np.maximum(ref, 0), atol=1e-9)
    assert 0.3 < report["metrics"]["map50"] < 0.95  # a non-trivial set
    for k, name in enumerate(CLASSES):
        one = _pycocotools_from_files(tmp_path, targets, dets, cat_ids=[k + 1])
        assert report["per_class"][name]["ap50_95"] == pytest.approx(one[0], abs=1e-9)
        assert report["per_class"][name]["ap50"] == pytest.approx(one[1], abs=1e-9)
    assert report["instances"] == sum(len(t["boxes"]) for t in targets)
    on_disk = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert on_disk["metrics"] == pytest.approx(report["metrics"])
    for png in ("pr_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_perfect_and_empty_predictions():
    targets, _ = _known_set(seed=1)
    perfect = [Detections(t["boxes"], np.ones(len(t["boxes"]), np.float32),
                          t["classes"].astype(np.int32)) for t in targets]
    report = evaluate_detections(targets, perfect, CLASSES)
    assert report["metrics"]["map50_95"] == pytest.approx(1.0)
    assert report["metrics"]["ar100"] == pytest.approx(1.0)
    none = evaluate_detections(targets, [Detections.empty() for _ in targets], CLASSES)
    assert none["metrics"]["map50"] == 0.0
    assert all(v["ap50"] == 0.0 for v in none["per_class"].values() if v["instances"])


def test_confusion_matrix_counts():
    t = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
          "classes": np.array([0, 1, 2])}]
    d = [Detections(np.array([[0, 0, 10, 10], [21, 20, 31, 30], [80, 80, 90, 90],
                              [50, 50, 60, 60]], np.float32),
                    np.array([0.9, 0.8, 0.7, 0.1], np.float32), np.array([0, 2, 1, 2], np.int32))]
    cm = confusion_matrix(t, d, 3, conf=0.25, iou=0.5)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # right
    expected[1, 2] = 1  # square predicted as triangle
    expected[3, 1] = 1  # false positive (background row)
    expected[2, 3] = 1  # triangle missed (its detection is under conf)
    np.testing.assert_array_equal(cm, expected)
