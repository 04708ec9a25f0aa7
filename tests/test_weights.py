"""ImageNet weights of keras.applications families: loaded from the Keras cache
(``$KERAS_HOME/models``) without the network, and a one-line error naming the file and the
folder when they are neither cached nor downloadable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from visionsuite.backbones import build_backbone, get_backbone_entry
from visionsuite.backbones.efficientnet import IMAGENET_MEAN, IMAGENET_STD
from visionsuite.backbones.efficientnet import imagenet_weights as efficientnet_weights
from visionsuite.backbones.mobilenet import imagenet_weights as mobilenet_weights
from visionsuite.backbones.weights import keras_cache_dir
from visionsuite.errors import ModelError

# Every download goes to a proxy on a closed local port: the test is offline by construction,
# also on machines that have the network.
OFFLINE_ENV = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
               "no_proxy": "", "NO_PROXY": ""}


@pytest.fixture()
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    return tmp_path / "keras_home"


def _save_legacy_h5(model, path):
    """Write ``model``'s weights as the legacy HDF5 file keras.applications downloads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))  # a ".h5" name selects Keras' legacy HDF5 format
    return path


def test_cache_folder_follows_keras_home(keras_home):
    assert keras_cache_dir() == keras_home / "models"


def test_imagenet_weights_load_from_the_keras_cache(keras_home):
    import keras

    entry = get_backbone_entry("mobilenet_v3_small")
    where, present = entry.weights_source("imagenet")
    assert str(keras_home / "models") in where and not present
    reference = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                    input_shape=(64, 64, 3))
    _save_legacy_h5(reference, keras_home / "models" / mobilenet_weights("small").fname)
    assert entry.weights_source("imagenet")[1] is True
    model = build_backbone("mobilenet_v3_small", (64, 64, 3), weights="imagenet").model
    for name in ("conv", "expanded_conv_project", "conv_1"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                      reference.get_layer(name).get_weights()[0])


def test_efficientnet_keeps_exact_imagenet_normalization_after_loading(keras_home):
    import keras

    reference = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                                  input_shape=(64, 64, 3))
    _save_legacy_h5(reference, keras_home / "models" / efficientnet_weights("efficientnet_b0").fname)
    model = build_backbone("efficientnet_b0", (64, 64, 3), weights="imagenet").model
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(),
                                  reference.get_layer("stem_conv").kernel.numpy())
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    np.testing.assert_allclose(np.ravel(norm.mean), IMAGENET_MEAN, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.ravel(norm.variance)), IMAGENET_STD, rtol=1e-6)


def test_a_corrupt_cached_file_is_one_clear_error(keras_home):
    path = keras_home / "models" / mobilenet_weights("small").fname
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ModelError, match="cannot load ImageNet weights from .*no_top_v2.h5") as info:
        build_backbone("mobilenet_v3_small", (64, 64, 3), weights="imagenet")
    assert "\n" not in str(info.value)


def test_offline_failure_names_the_file_and_the_cache_folder(tmp_path):
    # A fresh interpreter, so that no earlier download in this process shaped urllib's opener.
    code = textwrap.dedent("""
        import sys
        from visionsuite.backbones import build_backbone
        from visionsuite.backbones.weights import WeightsUnavailableError
        try:
            build_backbone("resnet50", (64, 64, 3), weights="imagenet")
        except WeightsUnavailableError as exc:
            print("ERROR:", exc)
            sys.exit(3)
    """)
    env = {**os.environ, **OFFLINE_ENV, "KERAS_HOME": str(tmp_path / "kh"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    message = next(line for line in proc.stdout.splitlines() if line.startswith("ERROR:"))
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert f"place it in {tmp_path / 'kh' / 'models'}" in message
    assert "https://storage.googleapis.com/" in message


def test_imagenet_classifier_of_a_keras_application_from_cached_top_weights(keras_home):
    import keras

    from visionsuite.backbones.pretrained import imagenet_classifier

    reference = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3))
    _save_legacy_h5(reference, keras_home / "models" / mobilenet_weights("small", include_top=True).fname)
    model = imagenet_classifier("mobilenet_v3_small", input_size=96)
    images = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    probs = np.asarray(model(images))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(probs, np.asarray(reference(images)), rtol=1e-4, atol=1e-6)
