"""A PNG damaged in the middle (valid signature and IEND, bad IDAT bytes) passes the cheap
file check and fails only when decoded inside ``tf.data``: it is skipped and reported once by
name, batches keep their size, training finishes; under ``--strict`` the run stops with one
line naming the file and leaves no run folder. Also: order and augmentation are pure
functions of (seed, epoch, batch)."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

tf = pytest.importorskip("tensorflow")

from visionsuite.cli import main  # noqa: E402


def corrupt_idat(path: Path) -> Path:
    """Replace the IDAT payload of a PNG with valid zlib data holding invalid filter bytes
    (CRC fixed, IEND kept): the file looks whole and decoding fails in libpng."""
    data = bytearray(path.read_bytes())
    i = data.find(b"IDAT")
    n = struct.unpack(">I", data[i - 4:i])[0]
    payload = zlib.compress(b"\x07" * 4000)  # PNG filter types are 0-4
    chunk = b"IDAT" + payload
    data[i - 4:i + 4 + n + 4] = struct.pack(">I", len(payload)) + chunk + struct.pack(
        ">I", zlib.crc32(chunk))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two class folders of 6 PNGs each; ``a/0.png`` is damaged inside."""
    import cv2

    root = tmp_path_factory.mktemp("damaged")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(6):
            cv2.imwrite(str(root / c / f"{i}.png"),
                        rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    corrupt_idat(root / "a" / "0.png")
    return root


def test_the_damaged_png_passes_the_file_check_but_not_decoding(folder):
    from visionsuite.data.images import check_image_file, read_image
    from visionsuite.errors import DataError

    assert check_image_file(folder / "a" / "0.png") is None
    with pytest.raises(DataError, match="0.png"):
        read_image(folder / "a" / "0.png")


def _task():
    from visionsuite_tasks.classification import ClassificationConfig, ClassificationTask

    return ClassificationTask(ClassificationConfig(image_size=32))


def test_pipeline_skips_the_sample_once_and_keeps_batch_sizes(folder, caplog):
    task = _task()
    data = task.load_dataset(str(folder), split="train")
    assert len(data) == 12  # the damage is not visible to the reader's scan
    ds = task.make_tf_dataset(data, batch_size=4, training=False)
    with caplog.at_level(logging.WARNING, logger="visionsuite.data"):
        for _ in range(2):
            sizes = [int(x.shape[0]) for x, _ in ds]
            assert sizes == [4, 4, 4]
    reports = [r.getMessage() for r in caplog.records if "0.png" in r.getMessage()]
    assert len(reports) == 1 and "skipped unreadable sample" in reports[0]


def test_strict_pipeline_error_names_the_file(folder):
    from visionsuite.data.pipeline import pipeline_scope, sample_error

    task = _task()
    data = task.load_dataset(str(folder), split="train")
    with pipeline_scope(strict=True):
        ds = task.make_tf_dataset(data, batch_size=4, training=False)
    with pytest.raises(tf.errors.OpError) as info:
        for _ in ds:
            pass
    error = sample_error(info.value)
    assert error is not None and "0.png" in str(error) and "strict" in str(error)
    assert "[visionsuite" not in str(error) and "\n" not in str(error)
    assert sample_error(ValueError("something else")) is None


def _train(folder, runs, *extra):
    args = ["train", "classification", "--data", str(folder), "--backbone", "simple_cnn",
            "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--runs-dir",
            str(runs), "--name", "r", "--set", "jit_compile=false", "--set", "progress=false",
            "--set", "val_fraction=0.25", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_training_skips_the_damaged_png_and_finishes(folder, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="visionsuite.data"):
        result = _train(folder, tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "runs" / "classification" / "r" / "best.keras").is_file()
    assert "0.png" in caplog.text and "Graph execution error" not in result.stderr


def test_strict_training_fails_in_one_line_naming_the_file(folder, tmp_path):
    result = _train(folder, tmp_path / "runs", "--strict")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read image ")
    assert "0.png" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # no empty run folder left behind


def test_order_and_augmentation_are_pure_functions_of_seed_epoch_batch(folder):
    from visionsuite.data import augment
    from visionsuite.data.pipeline import make_tf_dataset, pipeline_scope
    from visionsuite.task import Dataset, Sample

    rng = np.random.default_rng(1)
    samples = [Sample(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), i) for i in range(10)]
    data = Dataset(["x"], samples)
    spec = (tf.TensorSpec((16, 16, 3), tf.float32), tf.TensorSpec((), tf.int32))

    def batches(start, count):
        with pipeline_scope(start_batch=start):
            ds = make_tf_dataset(data, output_signature=spec, batch_size=4, training=True,
                                 transform=augment.train_transform(16, strength=1.0), seed=5)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]

    whole = batches(0, 9)  # three epochs of 3 batches (4, 4, 2)
    assert [len(y) for _, y in whole] == [4, 4, 2] * 3
    assert sorted(np.concatenate([y for _, y in whole[3:6]])) == list(range(10))
    assert not np.array_equal(whole[0][1], whole[3][1])  # reshuffled each epoch
    later = batches(4, 5)  # start in the middle of epoch 2, as a resumed run does
    for (xa, ya), (xb, yb) in zip(whole[4:], later):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
