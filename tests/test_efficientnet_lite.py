"""EfficientNet-Lite0: the torch-free checkpoint reader (restricted unpickler, both PyTorch
formats) and the port, judged by top-1 ImageNet classes on real photos."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import cv2
import numpy as np
import pytest

from visionsuite import samples
from visionsuite.backbones import build_backbone
from visionsuite.backbones.torch_checkpoint import (
    LEGACY_MAGIC,
    RestrictedUnpickler,
    read_state_dict,
)
from visionsuite.errors import ModelError

# photo -> acceptable top-1 ImageNet indices (chelsea is a tabby; the ImageNet cat classes
# tabby / tiger cat / Egyptian cat overlap).
PHOTOS = {"chelsea": {281, 282, 285}, "coffee": {967}, "squirrel_cls": {335}, "orange": {950}}


@pytest.fixture(scope="module")
def checkpoint():
    return samples.efficientnet_lite0_checkpoint()


@pytest.fixture(scope="module")
def state(checkpoint):
    return read_state_dict(checkpoint)


def test_checkpoint_tensors(state):
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 247
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert np.all(state["_bn1.running_var"] > 0)


class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("echo pwned",)


def test_restricted_unpickler_refuses_other_globals():
    data = pickle.dumps({"weight": _Evil()}, protocol=2)
    with pytest.raises(ModelError, match=r"refusing to unpickle (posix|os)\.system"):
        RestrictedUnpickler(io.BytesIO(data), source="evil.pth").load()


def test_a_pickled_payload_inside_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (LEGACY_MAGIC, 1001, {}, {"weight": _Evil()}):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(ModelError, match="refusing to unpickle"):
        read_state_dict(path)


def test_truncated_checkpoint_is_one_clear_error(checkpoint, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(checkpoint.read_bytes()[:5_000_000])
    with pytest.raises(ModelError, match="truncated"):
        read_state_dict(path)


def _legacy_to_zip(legacy, out):
    """Rewrite the legacy checkpoint in PyTorch's zip format (the same state-dict pickle as
    ``archive/data.pkl``, one raw file per storage), so both readers meet the same data."""
    raw = legacy.read_bytes()
    with open(legacy, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            RestrictedUnpickler(f).load()
        start = f.tell()
        refs = RestrictedUnpickler(f).load()
        data_pkl = raw[start:f.tell()]
        keys = RestrictedUnpickler(f).load()
        itemsize = {ref.storage_key: np.dtype(ref.storage_type.dtype).itemsize
                    for ref in refs.values()}
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("archive/data.pkl", data_pkl)
            for key in keys:
                (numel,) = struct.unpack("<q", f.read(8))
                zf.writestr(f"archive/data/{key}", f.read(numel * itemsize[key]))
    return out


def test_zip_format_reads_the_same_tensors(checkpoint, state, tmp_path):
    zipped = _legacy_to_zip(checkpoint, tmp_path / "lite0_zip.pth")
    assert zipfile.is_zipfile(zipped)
    again = read_state_dict(zipped)
    assert again.keys() == state.keys()
    for key in ("_conv_stem.weight", "_blocks.7._project_conv.weight", "_fc.bias",
                "_bn1.num_batches_tracked"):
        np.testing.assert_array_equal(again[key], state[key])


def test_backbone_imagenet_weights_are_the_checkpoint(state):
    model = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet").model
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(),
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block6d_dwconv").kernel.numpy(),
                                  state["_blocks.14._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(model.get_layer("top_bn").moving_variance.numpy(),
                                  state["_bn1.running_var"])


def test_imagenet_top1_on_real_photos():
    from visionsuite.backbones.pretrained import imagenet_class_names, imagenet_classifier

    model = imagenet_classifier("efficientnet_lite0")
    names = imagenet_class_names()
    assert names[335].startswith("fox squirrel") and names[967] == "espresso"
    images = []
    for photo in PHOTOS:
        bgr = cv2.imread(str(samples.sample_photo(photo)), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        images.append(rgb.astype("float32"))
    probs = np.asarray(model(np.stack(images)))
    for (photo, expected), p in zip(PHOTOS.items(), probs):
        top = int(np.argmax(p))
        assert top in expected, f"{photo}: top-1 {names[top]} ({p[top]:.2f})"
        assert p[top] > 0.5, f"{photo}: {names[top]} only at {p[top]:.2f}"
