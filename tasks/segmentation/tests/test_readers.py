"""Segmentation datasets: class maps, index / palette / RGB masks, CSV manifests, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from visionsuite.errors import DataError
from visionsuite_tasks.segmentation import readers
from visionsuite_tasks.segmentation.readers import IGNORE

CLASS_MAP = """\
ignore_index: 255
classes:
  - {id: 0, name: background, color: [0, 0, 0]}
  - {id: 1, name: cat, color: [200, 0, 0]}
  - {id: 2, name: dog, color: [0, 200, 0]}
"""


def _image(path: Path, h=20, w=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 120, np.uint8))


def _index_mask(path: Path, values: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def _mask_values(h=20, w=30):
    m = np.zeros((h, w), np.uint8)
    m[2:8, 3:10] = 1
    m[10:15, 12:25] = 2
    m[0, 0] = 255  # ignored
    return m


def _dataset(root: Path, n=2, class_map=CLASS_MAP):
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(class_map)
    for i in range(n):
        _image(root / "images" / f"im{i}.jpg")
        _index_mask(root / "masks" / f"im{i}.png", _mask_values())
    return root


def test_class_map_full_and_names_only(tmp_path):
    (tmp_path / "a.yaml").write_text(CLASS_MAP)
    cmap = readers.read_class_map(tmp_path / "a.yaml")
    assert cmap.names == ("background", "cat", "dog")
    assert cmap.colors[1] == (200, 0, 0) and cmap.explicit_colors
    (tmp_path / "b.yaml").write_text("classes: [sky, road, car]\nignore_index: 0\n")
    with pytest.raises(DataError, match="id in 0..255 other than ignore_index=0"):
        readers.read_class_map(tmp_path / "b.yaml")  # ids by position clash with ignore 0
    (tmp_path / "c.yaml").write_text("classes: [sky, road, car]\n")
    cmap = readers.read_class_map(tmp_path / "c.yaml")
    assert cmap.ids == (0, 1, 2) and not cmap.explicit_colors
    assert cmap.colors[1] == (128, 0, 0)  # Pascal VOC palette


def test_class_map_non_contiguous_ids_map_to_channels(tmp_path):
    (tmp_path / "c.yaml").write_text("classes:\n  - {id: 0, name: bg}\n  - {id: 7, name: car}\n"
                                     "  - {id: 3, name: road}\n")
    cmap = readers.read_class_map(tmp_path / "c.yaml")
    assert cmap.names == ("bg", "road", "car")  # channels follow increasing ids
    _index_mask(tmp_path / "m.png", np.array([[0, 3, 7, 255]]))
    assert readers.read_mask(tmp_path / "m.png", cmap).tolist() == [[0, 1, 2, IGNORE]]


@pytest.mark.parametrize("text, message", [
    ("classes:\n  - {id: 0, name: a}\n  - {id: 0, name: b}\n", "duplicate id 0"),
    ("classes:\n  - {id: 0, name: a, color: [1, 2, 3]}\n  - {id: 1, name: b, color: [1, 2, 3]}\n",
     r"duplicate color \(1, 2, 3\)"),
    ("classes:\n  - {id: 0, name: a}\n  - {id: 1, name: a}\n", "duplicate name 'a'"),
    ("classes: [a]\n", "2 to 254 classes"),
    ("clases: [a, b]\n", "'classes' list"),
    ("classes: [a, b]\nignore: 3\n", "unknown key 'ignore'"),
])
def test_bad_class_maps(tmp_path, text, message):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        readers.read_class_map(path)
    assert str(path) in str(info.value)


def test_index_mask_dataset_counts_and_weights(tmp_path):
    root = _dataset(tmp_path / "ds")
    data = readers.read_dataset(root)
    assert data.classes == ["background", "cat", "dog"]
    assert len(data) == 2 and not data.skipped
    m = _mask_values()
    expected = [int((m == k).sum()) for k in range(3)]
    assert list(data.samples[0].target.counts) == expected
    assert readers.class_pixel_counts(data).tolist() == [2 * c for c in expected]
    weights = readers.class_weights(data)
    assert weights[0] < weights[2] < weights[1]  # rarer classes weigh more (cat < dog < bg)
    assert np.isclose(weights.mean(), 1.0)


def test_palette_mask_reads_indices_not_colours(tmp_path):
    cmap = readers.ClassMap.from_names(["background", "cat", "dog"])
    values = _mask_values()
    img = Image.fromarray(values, mode="P")
    img.putpalette(readers.voc_palette().reshape(-1).tolist())
    img.save(tmp_path / "voc.png")
    mask = readers.read_mask(tmp_path / "voc.png", cmap)
    assert np.array_equal(mask, values)  # 255 (VOC's border value) is ignore


def test_rgb_mask_mapped_through_class_map_colours(tmp_path):
    (tmp_path / "classes.yaml").write_text(CLASS_MAP)
    cmap = readers.read_class_map(tmp_path / "classes.yaml")
    values = _mask_values()
    values[0, 0] = 0
    rgb = np.array([[0, 0, 0], [200, 0, 0], [0, 200, 0]], np.uint8)[values]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    assert np.array_equal(readers.read_mask(tmp_path / "rgb.png", cmap), values)
    rgb[5, 5] = (1, 2, 3)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad.png has color \(1, 2, 3\) at \(x=5, y=5\)"):
        readers.read_mask(tmp_path / "bad.png", cmap)


def test_csv_manifest(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "list.csv").write_text("image,mask\nimages/im0.jpg,masks/im0.png\n"
                                   "images/im1.jpg,masks/im1.png\n")
    data = readers.read_dataset(root / "list.csv")
    assert [Path(s.image).name for s in data.samples] == ["im0.jpg", "im1.jpg"]
    assert "list.csv, line 2" in data.samples[0].source


def test_splits_and_voc_folder_names(tmp_path):
    root = tmp_path / "voc"
    (root).mkdir()
    (root / "classes.yaml").write_text(CLASS_MAP)
    for split in ("train", "test"):
        _image(root / split / "JPEGImages" / "a.jpg")
        _index_mask(root / split / "SegmentationClass" / "a.png", _mask_values())
    assert len(readers.read_dataset(root, split="train")) == 1
    with pytest.raises(DataError, match="no 'val' split"):
        readers.read_dataset(root, split="val")


# === Bad input: one clear error each ===
def test_mask_value_missing_from_class_map(tmp_path):
    root = _dataset(tmp_path / "ds")
    bad = _mask_values()
    bad[4, 4] = 9
    _index_mask(root / "masks" / "im1.png", bad)
    with pytest.raises(DataError) as info:
        readers.read_dataset(root)
    message = str(info.value)
    assert "im1.png" in message and "value 9" in message and "\n" not in message


def test_mask_size_differs_from_image(tmp_path):
    root = _dataset(tmp_path / "ds")
    _index_mask(root / "masks" / "im0.png", np.zeros((10, 30), np.uint8))
    with pytest.raises(DataError, match=r"im0.png is 30x10 but its image .*im0.jpg is 30x20"):
        readers.read_dataset(root)


def test_image_without_mask(tmp_path):
    root = _dataset(tmp_path / "ds")
    _image(root / "images" / "lonely.jpg")
    with pytest.raises(DataError, match=r"lonely.jpg has no mask: expected .*masks/lonely.png"):
        readers.read_dataset(root)


def test_rgb_mask_without_palette_in_class_map(tmp_path):
    root = _dataset(tmp_path / "ds", class_map="classes: [background, cat, dog]\n")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8), mode="RGB").save(root / "masks" / "im0.png")
    with pytest.raises(DataError, match="im0.png is an RGB image but the class map .* gives no colors"):
        readers.read_dataset(root)


def test_corrupt_image_skipped_or_strict(tmp_path):
    root = _dataset(tmp_path / "ds", n=3)
    data = (root / "images" / "im2.jpg").read_bytes()
    (root / "images" / "im2.jpg").write_bytes(data[: len(data) // 2])
    loaded = readers.read_dataset(root)
    assert len(loaded) == 2 and "truncated" in loaded.skipped[0][1]
    with pytest.raises(DataError, match="im2.jpg"):
        readers.read_dataset(root, strict=True)


def test_cli_bad_input_is_one_line(tmp_path):
    root = _dataset(tmp_path / "ds")
    (root / "classes.yaml").write_text("classes:\n  - {id: 0, name: a}\n  - {id: 0, name: b}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "visionsuite.cli", "train", "segmentation", "--data", str(root),
         "--epochs", "1", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "duplicate id 0" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
