"""Generic data layer: image reading, bad files, folder/CSV helpers, tf.data pipeline."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from visionsuite.data import augment
from visionsuite.data.images import check_image_file, list_images, read_image, to_rgb, warn_skipped
from visionsuite.data.readers import read_csv_rows, resolve_split
from visionsuite.errors import DataError
from visionsuite.task import Dataset, Sample


def _photo(h=40, w=60):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) % 256], -1).astype(np.uint8)  # RGB


def _write(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_read_image_returns_rgb(tmp_path):
    rgb = _photo()
    img = read_image(_write(tmp_path / "a.png", rgb))
    assert img.dtype == np.uint8 and img.shape == (40, 60, 3)
    np.testing.assert_array_equal(img, rgb)  # PNG is lossless: channel order is RGB


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_detected(tmp_path, suffix):
    path = _write(tmp_path / f"t{suffix}", _photo(120, 160))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in check_image_file(path)
    # OpenCV alone would return a grey-filled image for the JPEG: we refuse it.
    with pytest.raises(DataError, match=r"t\.(jpg|png).*truncated"):
        read_image(path)


def test_corrupt_missing_and_empty_files(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "signature" in check_image_file(tmp_path / "junk.jpg")
    assert check_image_file(tmp_path / "empty.png") == "empty file"
    assert check_image_file(tmp_path / "nope.png") == "file not found"
    with pytest.raises(DataError, match="junk.jpg"):
        read_image(tmp_path / "junk.jpg")
    # a complete PNG whose pixel data is damaged: found by decoding
    path = _write(tmp_path / "bad.png", _photo())
    data = bytearray(path.read_bytes())
    data[40:-20] = b"\x00" * (len(data) - 60)
    path.write_bytes(bytes(data))
    assert check_image_file(path) is None
    with pytest.raises(DataError, match="bad.png"):
        read_image(path)


def test_channels_gray_alpha_and_16bit(tmp_path):
    gray = _photo()[..., 0]
    assert cv2.imwrite(str(tmp_path / "g.png"), gray)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (40, 60, 3) and (img[..., 0] == gray).all() and (img[..., 2] == gray).all()
    bgra = np.dstack([cv2.cvtColor(_photo(), cv2.COLOR_RGB2BGR), np.full((40, 60), 7, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), _photo())
    assert cv2.imwrite(str(tmp_path / "d.png"), gray.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png")[..., 1], gray)
    with pytest.raises(DataError, match=r"shape=\(40, 60, 5\)"):
        to_rgb(np.zeros((40, 60, 5), np.uint8), "five.npy")
    with pytest.raises(DataError, match=r"shape=\(2, 40, 60, 3\)"):
        to_rgb(np.zeros((2, 40, 60, 3), np.uint8), "batch.npy")


def test_list_images_skips_or_raises(tmp_path, caplog):
    _write(tmp_path / "ok.png", _photo())
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "notes.txt").write_text("ignored")
    paths, skipped = list_images(tmp_path)
    assert [p.name for p in paths] == ["ok.png"]
    assert skipped == [(str(tmp_path / "bad.jpg"), "truncated JPEG (no end-of-image marker)")]
    with caplog.at_level(logging.WARNING, logger="visionsuite.data"):
        warn_skipped(skipped, "photos")
    assert "skipped 1 unreadable" in caplog.text and "bad.jpg" in caplog.text
    with pytest.raises(DataError, match="bad.jpg.*strict"):
        list_images(tmp_path, strict=True)
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "missing")


def test_resolve_split_and_csv_rows(tmp_path):
    with pytest.raises(DataError, match="dataset not found"):
        resolve_split(tmp_path / "nope", "train")
    assert resolve_split(tmp_path, "train") == tmp_path  # no split folders
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    assert resolve_split(tmp_path, "val") == tmp_path / "val"
    with pytest.raises(DataError, match="no 'tset' split"):
        resolve_split(tmp_path, "tset")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("Path,Label\n# comment\na.png,cat\n\nb.png,dog\n")
    assert read_csv_rows(csv_path, ("path", "label")) == [
        (3, {"path": "a.png", "label": "cat"}), (5, {"path": "b.png", "label": "dog"})]
    csv_path.write_text("a.png,1.5\nb.png\n")
    with pytest.raises(DataError, match=r"m.csv, line 2"):
        read_csv_rows(csv_path, ("path", "label"))
    csv_path.write_text("path,target\na.png,1\n")
    with pytest.raises(DataError, match="lacks column.*label"):
        read_csv_rows(csv_path, ("path", "label"))


# === tf.data pipeline ===

@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _marked_dataset(n=12):
    # Each image is filled with its own label value, so any misalignment shows.
    return Dataset(["x"], [Sample(np.full((30, 40, 3), 10 * i, np.uint8), i, f"s{i}")
                           for i in range(n)])


def _collect(ds, epochs=1):
    out = []
    for _ in range(epochs):
        for x, y in ds:
            out.append((x.numpy(), y.numpy()))
    return out


def test_pipeline_shapes_alignment_and_determinism(tf):
    from visionsuite.data.pipeline import make_tf_dataset

    data = _marked_dataset()
    sig = (tf.TensorSpec((16, 16, 3), tf.float32), tf.TensorSpec((), tf.int32))

    def make(seed):
        return make_tf_dataset(data, output_signature=sig, batch_size=5, training=True,
                               transform=augment.train_transform(16, strength=0.0), seed=seed)

    run = _collect(make(1), epochs=2)
    assert [len(y) for _, y in run] == [5, 5, 2, 5, 5, 2]
    x, y = run[0]
    assert x.dtype == np.float32 and x.shape == (5, 16, 16, 3) and y.dtype == np.int32
    for x, y in run:  # labels follow their images through shuffle and transform
        np.testing.assert_array_equal(x[:, 8, 8, 0], 10 * y)
    epoch1 = np.concatenate([y for _, y in run[:3]])
    epoch2 = np.concatenate([y for _, y in run[3:]])
    assert sorted(epoch1) == list(range(12)) and sorted(epoch2) == list(range(12))
    assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch
    again = _collect(make(1), epochs=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(run, again))
    other = np.concatenate([y for _, y in _collect(make(2))])
    assert not np.array_equal(epoch1, other)


def test_pipeline_augmentation_is_seeded(tf):
    from visionsuite.data.pipeline import make_tf_dataset

    rgb = _photo(48, 48)
    data = Dataset(["x"], [Sample(rgb, i) for i in range(8)])
    sig = (tf.TensorSpec((24, 24, 3), tf.uint8), tf.TensorSpec((), tf.int64))

    def images(seed):
        ds = make_tf_dataset(data, output_signature=sig, batch_size=4, training=True,
                             transform=augment.train_transform(24, strength=1.0), seed=seed)
        return np.concatenate([x.numpy() for x, _ in ds])

    a, b, c = images(0), images(0), images(5)
    assert a.dtype == np.uint8 and a.shape == (8, 24, 24, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({im.tobytes() for im in a}) > 1  # samples get different augmentations


def test_pipeline_eval_order_and_errors(tf, tmp_path):
    from visionsuite.data.pipeline import make_tf_dataset

    data = _marked_dataset(7)
    sig = (tf.TensorSpec((8, 8, 3), tf.float32), tf.TensorSpec((), tf.int32))
    ds = make_tf_dataset(data, output_signature=sig, batch_size=3, training=False,
                         transform=augment.eval_transform(8))
    assert np.concatenate([y for _, y in _collect(ds)]).tolist() == list(range(7))
    with pytest.raises(DataError, match="no samples"):
        make_tf_dataset(Dataset([], []), output_signature=sig, batch_size=2, training=False)
    gone = Dataset(["x"], [Sample(str(tmp_path / "gone.png"), 0)])
    ds = make_tf_dataset(gone, output_signature=sig, batch_size=1, training=False,
                         transform=augment.eval_transform(8))
    with pytest.raises(Exception, match="gone.png"):
        next(iter(ds))


def test_train_transform_for_reads_the_task_config():
    import dataclasses

    import albumentations as A

    from visionsuite.data.augment import train_transform_for
    from visionsuite_tasks.segmentation import SegmentationTask

    config = SegmentationTask.Config(image_size=48, augment=0.5, hflip=False, color_jitter=False,
                                     affine=True)
    steps = [type(t) for t in train_transform_for(config).transforms]
    assert steps == [A.RandomResizedCrop, A.Affine]
    plain = dataclasses.replace(config, augment=0.0, hflip=True)
    assert [type(t) for t in train_transform_for(plain).transforms] == [A.Resize, A.HorizontalFlip]


def test_vertical_flips_and_90_degree_rotations_apply_jointly_to_image_and_mask():
    """Microscopy and aerial users expect them: every orientation of the dihedral group
    shows up, and the mask follows the image."""
    from visionsuite.data.augment import train_transform_for
    from visionsuite.task import ImageTaskConfig

    config = ImageTaskConfig(image_size=8, augment=0.0, hflip=False, vflip=True, rot90=True)
    transform = train_transform_for(config)
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    mask = np.arange(64, dtype=np.uint8).reshape(8, 8)
    seen = set()
    for seed in range(60):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        for k in range(4):
            for flip in (False, True):
                want = np.rot90(np.flipud(mask) if flip else mask, k)
                if np.array_equal(out["mask"], want):
                    seen.add((k, flip))
                    img = np.rot90(np.flipud(image) if flip else image, k)
                    assert np.array_equal(out["image"], img)
    assert len(seen) >= 6  # flips and rotations, not only the identity
