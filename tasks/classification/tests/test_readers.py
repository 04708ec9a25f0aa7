"""Classification dataset formats: class folders, CSV manifests, IDX (real Fashion-MNIST)."""

from __future__ import annotations

import gzip
import logging

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.classification import ClassificationTask
from visionsuite_tasks.classification.readers import detect_format, read_idx_file

FASHION = "/usr/share/datasets/fashion-mnist"


def _img(path, value=(0, 0, 255), size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))
    return path


@pytest.fixture
def task():
    return ClassificationTask(ClassificationTask.Config(image_size=32))


@pytest.fixture(scope="module")
def fashion_dir():
    from visionsuite.assets import debian_file

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        path = debian_file("dataset-fashion-mnist", f"{FASHION}/{name}")
    return path.parent


def test_class_folders_with_splits(task, tmp_path):
    for split, names in {"train": ["cat", "dog"], "val": ["bird", "cat", "dog"]}.items():
        for name in names:
            for i in range(2):
                _img(tmp_path / split / name / f"{i}.png")
    train = task.load_dataset(tmp_path, split="train")
    val = task.load_dataset(tmp_path, split="val")
    assert train.classes == val.classes == ["bird", "cat", "dog"]  # same indices in both
    assert sorted(s.target for s in train.samples) == [1, 1, 2, 2]
    assert sorted(s.target for s in val.samples) == [0, 0, 1, 1, 2, 2]
    assert train.skipped == []
    with pytest.raises(DataError, match="no 'test' split"):
        task.load_dataset(tmp_path, split="test")


def test_missing_dataset_and_loose_images(task, tmp_path):
    with pytest.raises(DataError, match=r"dataset not found: .*nowhere"):
        task.load_dataset(tmp_path / "nowhere")
    _img(tmp_path / "a.png")
    with pytest.raises(DataError, match="one sub-folder of images per class; found 1 images"):
        task.load_dataset(tmp_path, format="folder")


def test_empty_class_folder(task, tmp_path, caplog):
    _img(tmp_path / "a" / "1.png")
    _img(tmp_path / "c" / "1.png")
    (tmp_path / "b").mkdir()
    with caplog.at_level(logging.WARNING, logger="visionsuite.data"):
        data = task.load_dataset(tmp_path)
    assert data.classes == ["a", "b", "c"]  # kept, so indices match other splits
    assert data.skipped == [(str(tmp_path / "b"), "empty class folder")]
    assert [s.target for s in data.samples] == [0, 2]
    assert "skipped 1 unreadable" in caplog.text
    with pytest.raises(DataError, match=r"class folder .*b has no readable images"):
        task.load_dataset(tmp_path, strict=True)


def test_corrupt_and_truncated_images_are_skipped_or_fatal(task, tmp_path):
    _img(tmp_path / "a" / "ok.jpg", size=(64, 64))
    good = (tmp_path / "a" / "ok.jpg").read_bytes()
    (tmp_path / "a" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "b" / "x").mkdir(parents=True)
    _img(tmp_path / "b" / "x" / "nested.png")  # class folders are read recursively
    (tmp_path / "b" / "junk.png").write_bytes(b"GIF89a not really")
    data = task.load_dataset(tmp_path)
    assert len(data) == 2
    reasons = dict(data.skipped)
    assert set(reasons) == {str(tmp_path / "a" / "cut.jpg"), str(tmp_path / "b" / "junk.png")}
    assert "truncated JPEG" in reasons[str(tmp_path / "a" / "cut.jpg")]
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG.*strict"):
        task.load_dataset(tmp_path, strict=True)


def test_gray_and_rgba_images_become_rgb(task, tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "r").mkdir()
    assert cv2.imwrite(str(tmp_path / "g" / "gray.png"), np.full((10, 12), 200, np.uint8))
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 2] = 250  # BGRA red
    rgba[..., 3] = 0  # fully transparent: alpha is dropped, colour kept
    assert cv2.imwrite(str(tmp_path / "r" / "rgba.png"), rgba)
    data = task.load_dataset(tmp_path)
    x, y = next(iter(task.make_tf_dataset(data, batch_size=2, training=False)))
    x = x.numpy()
    assert x.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(x[0], 200.0)  # gray replicated to RGB
    np.testing.assert_allclose(x[1].mean(axis=(0, 1)), [250.0, 0.0, 0.0])  # red in RGB


def test_csv_manifest(task, tmp_path):
    _img(tmp_path / "img" / "a.png")
    _img(tmp_path / "img" / "b.png")
    _img(tmp_path / "img" / "c.png")
    (tmp_path / "m.csv").write_text(
        "path,label,split\nimg/a.png,10,train\nimg/b.png,2,train\nimg/missing.png,2,train\n"
        "img/c.png,10,test\n")
    data = task.load_dataset(tmp_path / "m.csv", split="train")
    assert data.classes == ["2", "10"]  # numeric labels sorted as numbers
    assert [s.target for s in data.samples] == [1, 0]
    assert data.skipped == [(str(tmp_path / "img" / "missing.png"),
                             "file not found (listed at line 4)")]
    with pytest.raises(DataError, match=r"m\.csv, line 4: cannot read image .*missing\.png"):
        task.load_dataset(tmp_path / "m.csv", split="train", strict=True)
    assert len(task.load_dataset(tmp_path / "m.csv")) == 3
    with pytest.raises(DataError, match="no rows of split 'val'"):
        task.load_dataset(tmp_path / "m.csv", split="val")


def test_csv_regression_and_format_errors(tmp_path):
    task = ClassificationTask(ClassificationTask.Config(image_size=32, mode="regression"))
    _img(tmp_path / "a.png")
    (tmp_path / "r.csv").write_text("a.png,0.25\na.png,-3e2\n")
    data = task.load_dataset(tmp_path / "r.csv")
    assert data.classes == ["value"] and [s.target for s in data.samples] == [0.25, -300.0]
    (tmp_path / "bad.csv").write_text("a.png,0.25\na.png,tall\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2: .*number. Received: label='tall'"):
        task.load_dataset(tmp_path / "bad.csv")
    with pytest.raises(UsageError, match="regression targets are read from a CSV"):
        task.load_dataset(tmp_path, format="folder")
    with pytest.raises(UsageError, match="unknown classification dataset format 'cvs'.*csv"):
        task.load_dataset(tmp_path / "r.csv", format="cvs")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        detect_format(tmp_path / "notes.txt")


def test_idx_reader_on_fashion_mnist(task, fashion_dir):
    assert detect_format(fashion_dir) == "idx"
    data = task.load_dataset(fashion_dir, split="test")
    assert len(data) == 10_000 and data.skipped == []
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    first = data.samples[0]
    assert first.image.shape == (28, 28) and first.image.dtype == np.uint8
    assert [data.classes[s.target] for s in data.samples[:3]] == ["Ankle boot", "Pullover",
                                                                  "Trouser"]
    counts = np.bincount([s.target for s in data.samples], minlength=10)
    assert counts.tolist() == [1000] * 10  # the test set is balanced
    with pytest.raises(DataError, match="no IDX split 'val'"):
        task.load_dataset(fashion_dir, split="val")


def test_idx_truncated_and_bad_files(tmp_path, fashion_dir):
    raw = gzip.decompress((fashion_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "cut-labels-idx1-ubyte").write_bytes(raw[:5000])
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx_file(tmp_path / "cut-labels-idx1-ubyte")
    (tmp_path / "junk-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx_file(tmp_path / "junk-labels-idx1-ubyte.gz")
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big")
                                                   + (2).to_bytes(4, "big") * 2 + bytes(8))
    (tmp_path / "x-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big")
                                                   + bytes(3))
    with pytest.raises(DataError, match="3 labels for 2 images"):
        ClassificationTask().load_dataset(tmp_path / "x-images-idx3-ubyte")


def test_entry_point_and_fixed_class_list(task, tmp_path):
    from visionsuite.plugins import get_task_class

    assert get_task_class("classification") is ClassificationTask
    _img(tmp_path / "a.png")
    (tmp_path / "val.csv").write_text("a.png,dog\n")
    train_classes = ["cat", "dog", "fox"]
    val = task.load_dataset(tmp_path / "val.csv", classes=train_classes)
    assert val.classes == train_classes and [s.target for s in val.samples] == [1]
    (tmp_path / "odd.csv").write_text("a.png,wolf\n")
    with pytest.raises(DataError, match="classes the model does not know: wolf"):
        task.load_dataset(tmp_path / "odd.csv", classes=train_classes)
