"""The synthetic detection data generator (tools/make_detection_dataset.py): exact boxes of
the visible pixels, small objects, occlusion, determinism, readable output, moving clips."""

import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionsuite_tasks.detection.readers import read_dataset

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location(
        "make_detection_dataset", ROOT / "tools" / "make_detection_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_boxes_are_the_tight_boxes_of_the_visible_pixels(gen):
    rng = np.random.default_rng(0)
    sides, occluded, seen = [], 0, set()
    for _ in range(30):
        image, boxes, classes, masks, visible = gen.make_scene(rng, None, 96, 128,
                                                               return_masks=True)
        assert image.shape == (96, 128, 3) and len(boxes) == len(classes) == len(masks)
        for box, m, v in zip(boxes, masks, visible):
            ys, xs = np.nonzero(v)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert v.sum() >= gen.MIN_VISIBLE * m.sum()
            occluded += v.sum() < m.sum()
        seen |= set(classes.tolist())
        sides += list(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
    assert occluded > 0  # partial occlusion happens
    assert min(sides) < 10 and max(sides) > 30  # small and large objects
    assert seen == set(range(len(gen.CLASSES)))


def test_dataset_is_deterministic_and_readable(gen, tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
        return h.hexdigest()

    a = gen.make_dataset(tmp_path / "a", train=6, val=2, test=3, size=(64, 96),
                         backgrounds="procedural", yolo=True)
    b = gen.make_dataset(tmp_path / "b", train=6, val=2, test=3, size=(64, 96),
                         backgrounds="procedural", yolo=True)
    assert digest(a) == digest(b)
    c = gen.make_dataset(tmp_path / "c", train=6, val=2, test=3, size=(64, 96), seed=1,
                         backgrounds="procedural")
    assert digest(c / "images") != digest(a / "images")
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        coco = read_dataset(a, split=split)
        yolo = read_dataset(a / "yolo", split=split)
        assert len(coco) == len(yolo) == n and coco.skipped == [] and yolo.skipped == []
        assert coco.classes == list(gen.CLASSES)
        total = sum(len(s.target["boxes"]) for s in coco.samples)
        assert total == sum(len(s.target["boxes"]) for s in yolo.samples) > 0
        assert cv2.imread(str(coco.samples[0].image)).shape == (64, 96, 3)


def test_moving_clip_with_tracks_and_line_crossings(gen, tmp_path):
    path = tmp_path / "clip.avi"
    gt = gen.make_clip(path, frames=60, size=(96, 128), objects=4, line=(0, 48, 128, 48))
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    assert count == 60
    saved = json.loads(Path(str(path) + ".json").read_text())
    assert len(saved["frames"]) == 60 and all(len(row) == 4 for row in saved["frames"])
    assert all(0 <= o["visible"] <= 1 for row in saved["frames"] for o in row)
    h, w = saved["size"]
    boxes = np.array([o["box"] for row in saved["frames"] for o in row])
    assert boxes[:, 0].min() >= -0.5 and boxes[:, 2].max() <= w + 0.5
    assert saved["crossings"] == gt["crossings"]
    for e in gt["crossings"]:  # the centre changed sides at that frame
        c = [((o["box"][1] + o["box"][3]) / 2) for f in (e["frame"] - 1, e["frame"])
             for o in saved["frames"][f] if o["id"] == e["id"]]
        assert (c[0] - 48) * (c[1] - 48) < 0
        assert (c[1] > 48) == (e["direction"] == "in")  # "in": downwards for this line


def test_tiny_dataset_from_the_library(tmp_path):
    from visionsuite_tasks.detection.synthetic import TINY_CLASSES, write_tiny_dataset

    root = write_tiny_dataset(tmp_path / "tiny", images=6)
    for split in ("train", "val"):
        ds = read_dataset(root, split=split)
        assert len(ds) == 6 and ds.skipped == [] and ds.classes == list(TINY_CLASSES)
        assert len(ds.samples[0].target["boxes"]) == 0  # a negative image
        for s in ds.samples[1:]:
            image = cv2.imread(str(s.image))
            h, w = image.shape[:2]
            for x1, y1, x2, y2 in s.target["boxes"].astype(int):
                # exact boxes: the object's colour reaches each edge of its box, not beyond
                color = image[(y1 + y2) // 2, (x1 + x2) // 2]
                is_obj = (image == color).all(axis=2)
                assert is_obj[y1, x1:x2].any() and is_obj[y2 - 1, x1:x2].any()
                assert is_obj[y1:y2, x1].any() and is_obj[y1:y2, x2 - 1].any()
                for row in (y1 - 1, y2):
                    if 0 <= row < h:
                        assert not is_obj[row, x1:x2].any()
                for col in (x1 - 1, x2):
                    if 0 <= col < w:
                        assert not is_obj[y1:y2, col].any()
