"""COCO / YOLO / VOC readers, box checks, format detection and converters (round trips)."""

import json

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite.task import Dataset, Sample
from visionsuite_tasks.detection.convert import (
    convert_command,
    convert_dataset,
    write_coco,
    write_voc,
    write_yolo,
)
from visionsuite_tasks.detection.readers import (
    check_boxes,
    detect_format,
    list_splits,
    read_coco,
    read_dataset,
    read_voc,
    read_yolo,
)

CLASSES = ["cat", "dog", "car"]


def _dataset(tmp_path, n=6, seed=0, integer=True):
    """An in-memory dataset of real image files with random boxes (one negative image)."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "src_images"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for k in range(n):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 120))
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        path = folder / f"im{k}.png"
        cv2.imwrite(str(path), image)
        m = 0 if k == 2 else int(rng.integers(1, 5))
        xy = rng.uniform(0, [w - 10, h - 10], (m, 2))
        wh = rng.uniform(3, 30, (m, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], 1)
        if integer:
            boxes = np.floor(boxes)
        cls = rng.integers(0, len(CLASSES), m).astype(np.int32)
        samples.append(Sample(image=path, target={"boxes": boxes.astype(np.float32),
                                                  "classes": cls, "size": (h, w)},
                              source=str(path)))
    return Dataset(list(CLASSES), samples)


def _same(a: Dataset, b: Dataset, atol):
    assert a.classes == b.classes
    assert len(a) == len(b)
    by_name = {cv2.imread(str(s.image)).tobytes(): s for s in b.samples}
    for s in a.samples:
        t = by_name[cv2.imread(str(s.image)).tobytes()].target  # match by pixel content
        assert tuple(t["size"]) == tuple(s.target["size"])
        order_a = np.lexsort(s.target["boxes"].T[::-1])
        order_b = np.lexsort(t["boxes"].T[::-1])
        np.testing.assert_allclose(t["boxes"][order_b], s.target["boxes"][order_a], atol=atol)
        np.testing.assert_array_equal(t["classes"][order_b], s.target["classes"][order_a])


@pytest.mark.parametrize("fmt,writer,reader", [("coco", write_coco, read_coco),
                                               ("yolo", write_yolo, read_yolo),
                                               ("voc", write_voc, read_voc)])
def test_each_writer_round_trips_through_its_reader(tmp_path, fmt, writer, reader):
    ds = _dataset(tmp_path, integer=(fmt == "voc"))
    writer(ds, tmp_path / fmt, "train")
    back = reader(tmp_path / fmt, split="train")
    assert detect_format(tmp_path / fmt) == fmt
    assert back.skipped == []
    _same(ds, back, atol=2e-3 if fmt != "voc" else 0)
    assert sum(len(s.target["boxes"]) == 0 for s in back.samples) == 1  # the negative image
    assert all(s.target["boxes"].dtype == np.float32 for s in back.samples)


def test_converter_chain_coco_yolo_voc_coco_keeps_every_box(tmp_path):
    ds, val = _dataset(tmp_path / "a"), _dataset(tmp_path / "b", n=3, seed=1)
    write_coco(ds, tmp_path / "coco", "train")
    write_coco(val, tmp_path / "coco", "val")
    assert list_splits(tmp_path / "coco") == ["train", "val"]
    r1 = convert_dataset(tmp_path / "coco", tmp_path / "yolo", "yolo")
    r2 = convert_dataset(tmp_path / "yolo", tmp_path / "voc", "voc", images="link")
    line = convert_command(str(tmp_path / "voc"), str(tmp_path / "coco2"), "coco")
    assert r1.images == {"train": 6, "val": 3} and r2.images == r1.images
    assert "voc -> coco" in line and "train: 6 images" in line
    for split, ref in (("train", ds), ("val", val)):
        for fmt in ("yolo", "voc", "coco2"):
            _same(ref, read_dataset(tmp_path / fmt, split=split), atol=2e-3)


def test_box_checks_clip_skip_and_report():
    boxes = [[-0.5, 2, 50, 40],    # small overshoot: clipped
             [-30, 2, 50, 40],     # far outside: skipped
             [10, 10, 10, 20],     # zero width: skipped
             [5, 5, 20, 20],       # unknown class: skipped
             [5, 5, np.nan, 20],   # not finite: skipped
             [99.5, 0, 101, 80]]   # inside the tolerance, but < 1 px once clipped
    kept, cls, skipped = check_boxes(boxes, [0, 1, 0, 7, 0, 1], (80, 100), 3, "x.txt")
    np.testing.assert_allclose(kept, [[0, 2, 50, 40]])
    assert cls.tolist() == [0]
    reasons = dict(skipped)
    assert set(reasons) == {f"x.txt box {k}" for k in (1, 2, 3, 4, 5)}
    assert "outside the 100x80 image" in reasons["x.txt box 1"]
    assert "positive size" in reasons["x.txt box 2"]
    assert "unknown class" in reasons["x.txt box 3"]


def test_yolo_bad_lines_missing_and_empty_labels(tmp_path):
    root = tmp_path / "y"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("a\nb\n")
    for name in ("p", "q", "r"):
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), np.full((50, 100, 3), 90, np.uint8))
    (root / "labels" / "p.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1\nx 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n"
        "1 0.1 0.1 0.3 0.1 0.3 0.4\n")  # polygon -> its bounding box
    (root / "labels" / "q.txt").write_text("")  # empty: a negative; r has no file at all
    ds = read_yolo(root)
    by = {s.image.stem: s.target for s in ds.samples}
    assert len(by["q"]["boxes"]) == 0 and len(by["r"]["boxes"]) == 0
    np.testing.assert_allclose(by["p"]["boxes"], [[40, 20, 60, 30], [10, 5, 30, 20]], atol=1e-4)
    assert by["p"]["classes"].tolist() == [0, 1]
    reasons = [r for _, r in ds.skipped]
    assert len(reasons) == 3
    assert any("5 values" in r for r in reasons) and any("non-numeric" in r for r in reasons)
    assert any("unknown class 5" in r for r in reasons)
    with pytest.raises(DataError, match="strict mode"):
        read_yolo(root, strict=True)


def test_corrupt_annotation_files_are_one_line_errors(tmp_path):
    ds = _dataset(tmp_path, n=3)
    path = write_coco(ds, tmp_path / "coco", "train")
    path.write_text(path.read_text()[:-20])
    with pytest.raises(DataError, match=r"corrupt COCO JSON \(line 1, column \d+") as err:
        read_coco(tmp_path / "coco", split="train")
    assert "\n" not in str(err.value)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="categories"):
        read_coco(path)
    write_voc(ds, tmp_path / "voc")
    xmls = sorted((tmp_path / "voc" / "Annotations").glob("*.xml"))
    xmls[0].write_text("<annotation><object>")
    got = read_voc(tmp_path / "voc")
    assert len(got) == 2 and "corrupt XML" in got.skipped[0][1]
    with pytest.raises(DataError, match="corrupt XML"):
        read_voc(tmp_path / "voc", strict=True)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "data.yaml").write_text("names: [a, b\ntrain: images")
    with pytest.raises(DataError, match="corrupt YAML"):
        read_yolo(tmp_path / "y")


def test_coco_unknown_category_missing_image_and_given_classes(tmp_path):
    ds = _dataset(tmp_path, n=3)
    path = write_coco(ds, tmp_path / "coco", "val")
    doc = json.loads(path.read_text())
    doc["annotations"][0]["category_id"] = 99
    doc["images"].append({"id": 50, "file_name": "gone.png", "height": 10, "width": 10})
    path.write_text(json.dumps(doc))
    got = read_coco(tmp_path / "coco", split="val")
    reasons = dict(got.skipped)
    assert any("unknown class" in r for r in reasons.values())
    assert any(item.endswith("gone.png") and r == "file not found" for item, r in reasons.items())
    # a fixed class list (e.g. the training set's) keeps indices; absent names are unknown
    fixed = read_coco(tmp_path / "coco", split="val", classes=["car", "cat"])
    assert fixed.classes == ["car", "cat"]
    for s_ref, s in zip(got.samples, fixed.samples):
        names = [got.classes[c] for c in s_ref.target["classes"] if got.classes[c] != "dog"]
        assert [fixed.classes[c] for c in s.target["classes"]] == names


def test_detect_format_and_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="not found"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell"):
        detect_format(tmp_path / "empty")
    with pytest.raises(UsageError, match="Received: format='tfrecord'"):
        read_dataset(tmp_path / "empty", format="tfrecord")
    with pytest.raises(UsageError, match="Received: to='csv'"):
        convert_dataset(tmp_path / "empty", tmp_path / "out", "csv")
