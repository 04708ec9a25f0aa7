"""The default brain-extraction model: fetch, the Keras port against the frozen graph, and the
whole pipeline on the real MNI152 T1 (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from visionsuite.assets import AssetError
from visionsuite.errors import DataError, ModelError
from visionsuite_tasks.medical import metrics, preprocess, pretrained, readers
from visionsuite_tasks.medical.volume import Volume


@pytest.fixture(scope="module")
def graph_path():
    return pretrained.deepbrain_graph_path()  # cached after set-up; fetched once otherwise


@pytest.fixture(scope="module")
def keras_model(graph_path):
    return pretrained.build_deepbrain_keras(graph_path)


def test_offline_fetch_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONSUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AssetError) as err:
        pretrained.deepbrain_graph_path()
    msg = str(err.value)
    assert "deepbrain==0.1" in msg and "place the file at" in msg and msg.endswith("graph.pb")
    assert "\n" not in msg


def test_keras_port_carries_every_graph_weight(graph_path, keras_model):
    weights = pretrained.graph_weights(graph_path)
    assert len(weights) == 10 + 10 + 3  # 10 convs with bias, 3 transposed convs without
    for name, value in weights.items():
        layer, kind = name.split("/")
        var = keras_model.get_layer(layer).kernel if kind == "kernel" else \
            keras_model.get_layer(layer).bias
        np.testing.assert_array_equal(np.asarray(var), value)
    assert {k: tuple(v.shape) for k, v in keras_model.output.items()} == {
        "probabilities": (None, 128, 128, 128, 1)}


def test_junk_graph_and_bad_volumes_are_refused(tmp_path, keras_model):
    junk = tmp_path / "graph.pb"
    junk.write_bytes(b"\x00\x01not a graph")
    with pytest.raises(ModelError, match="not a TensorFlow GraphDef|not deepbrain's graph"):
        pretrained.build_deepbrain_keras(junk)
    flat = Volume(np.ones((64, 64, 1), np.float32), np.eye(4))
    with pytest.raises(DataError, match="a 2D image"):
        pretrained.extract_brain(flat, keras_model)
    with pytest.raises(DataError, match="no positive intensities"):
        pretrained.extract_brain(Volume(np.zeros((16, 16, 16), np.float32), np.eye(4)),
                                 keras_model)


@pytest.mark.slow
def test_keras_port_matches_the_frozen_graph(graph_path, keras_model):
    x = np.random.default_rng(0).random((1, 128, 128, 128, 1)).astype(np.float32)
    graph = pretrained.load_graph_function(graph_path)
    expected = graph(x).numpy()
    got = np.asarray(keras_model(x)["probabilities"])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_brain_extraction_on_the_real_mni152_template(keras_model, tmp_path):
    from visionsuite import samples

    files = samples.mni152_template()
    t1 = readers.read_nifti(files["t1"])
    result = pretrained.extract_brain(t1, keras_model)
    assert result.mask.shape == t1.shape
    np.testing.assert_array_equal(result.mask.affine, t1.affine)
    out = readers.write_nifti(result.mask, tmp_path / "mask.nii.gz")
    back = readers.read_nifti(out)
    np.testing.assert_array_equal(back.affine, t1.affine)
    np.testing.assert_array_equal(back.array, result.mask.array)
    brain = t1.array > 0  # the template is skull-stripped: its support is its brain mask
    m = result.mask.array > 0
    # What the mask marks is brain; the skull-trained network misses the cortex of a
    # skull-stripped template (see the module docstring), so only a lower bound on volume.
    assert (m & brain).sum() / m.sum() > 0.98
    assert result.volume_ml > 300
    # Reoriented and resampled input: the mask lands on that grid, volume nearly unchanged.
    other = preprocess.resample_to_spacing(preprocess.reorient(t1, "LPS"), (1.5, 1.5, 1.5))
    res2 = pretrained.extract_brain(other, keras_model)
    np.testing.assert_array_equal(res2.mask.affine, other.affine)
    assert res2.mask.shape == other.shape
    assert res2.volume_ml == pytest.approx(result.volume_ml, rel=0.05)
    assert metrics.dice(preprocess.resample_like(res2.mask, t1).array > 0, m) > 0.9


def test_cached_keras_model_is_built_once_and_loads_in_safe_mode(tmp_path, keras_model):
    import keras

    path = pretrained.deepbrain_model(tmp_path / "deepbrain.keras")
    stamp = path.with_name(path.name + f".v{pretrained.CONVERSION_VERSION}")
    assert stamp.is_file()
    mtime = path.stat().st_mtime_ns
    assert pretrained.deepbrain_model(path) == path and path.stat().st_mtime_ns == mtime
    loaded = keras.models.load_model(path, safe_mode=True)
    for name in ("conv3d", "conv3d_transpose_2", "conv3d_9"):
        np.testing.assert_array_equal(np.asarray(loaded.get_layer(name).kernel),
                                      np.asarray(keras_model.get_layer(name).kernel))
