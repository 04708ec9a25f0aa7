"""Model files: metadata inside .keras, safe-mode loading, atomic saves, clear errors."""

import zipfile

import keras
import numpy as np
import pytest

from visionsuite.errors import ModelError
from visionsuite.models import (
    ModelMetadata, check_task, load_keras_model, read_keras_metadata, save_keras_model,
)

META = ModelMetadata(task="classification", classes=("cat", "dog"), input_size=8,
                     backbone="simple_cnn", task_config={"image_size": 8})


@pytest.fixture(scope="module")
def tiny_model():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_save_embeds_metadata_and_loads_back(tmp_path, tiny_model):
    path = save_keras_model(tiny_model, tmp_path / "m.keras", META)
    assert read_keras_metadata(path) == META
    loaded = load_keras_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), tiny_model(x), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temp files left


def test_save_is_atomic_when_saving_fails(tmp_path, tiny_model):
    path = save_keras_model(tiny_model, tmp_path / "m.keras", META)
    before = path.read_bytes()

    class Broken:
        def save(self, _):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_keras_model(Broken(), path, META)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_corrupt_keras_file_is_one_line(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError) as info:
        load_keras_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_keras_model(tmp_path / "none.keras")


def test_plain_keras_file_has_no_metadata(tmp_path, tiny_model):
    path = tmp_path / "plain.keras"
    tiny_model.save(path)
    with pytest.raises(ModelError, match="not a visionsuite model"):
        read_keras_metadata(path)


def test_safe_mode_refuses_lambda_layers(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match="refused to load: the model contains a Lambda layer"
                                         ".* Rebuild the model without it"):
        load_keras_model(path)


def test_wrong_task_is_reported():
    with pytest.raises(ModelError, match="is a 'classification' model, not 'segmentation'"):
        check_task(META, "segmentation", "m.keras")


def test_metadata_entry_is_json_inside_the_zip(tmp_path, tiny_model):
    path = save_keras_model(tiny_model, tmp_path / "m.keras", META)
    with zipfile.ZipFile(path) as zf:
        assert "visionsuite.json" in zf.namelist()
        assert b'"task": "classification"' in zf.read("visionsuite.json")


def test_version_1_metadata_still_loads_as_a_square_image_with_one_output():
    """Every model file written before the v2 contract (the default models in the cache
    included) keeps loading: input_size becomes an HWC spec, the output is "probabilities"."""
    from visionsuite.models import ModelMetadata

    v1 = ('{"backbone": "simple_cnn", "classes": ["a", "b"], "extra": {}, "format_version": 1, '
          '"input_size": 96, "task": "classification", "task_config": {"image_size": 96}}')
    meta = ModelMetadata.from_json(v1)
    assert meta.input_spec.shape == (96, 96, 3) and meta.input_spec.layout == "HWC"
    assert meta.output_names == ("probabilities",) and meta.input_size == 96
    again = ModelMetadata.from_json(meta.to_json())
    assert again == meta and again.format_version == 2


def test_v2_metadata_round_trips_clip_specs_and_named_outputs():
    from visionsuite.models import ModelMetadata
    from visionsuite.specs import InputSpec, OutputSpec

    meta = ModelMetadata(task="activity", classes=("walk", "run"),
                         input_spec=InputSpec((8, 64, 64, 3), "THWC"),
                         outputs=(OutputSpec("probabilities", (2,)), OutputSpec("state", (4,))))
    again = ModelMetadata.from_json(meta.to_json())
    assert again.input_spec.frames == 8 and again.input_size is None
    assert again.output_names == ("probabilities", "state")
