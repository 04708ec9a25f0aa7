"""ONNX: `visionsuite export --format onnx` with metadata and a parity check, and `.onnx`
models run by ONNX Runtime through the same runtime interface (named outputs) and by
`visionsuite run`. Skipped where the `visionsuite[onnx]` extra is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from test_export import CLASSES, colour_images, tiny_classifier  # noqa: E402

from visionsuite.models import ModelMetadata  # noqa: E402
from visionsuite.specs import OutputSpec  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    calibration = colour_images(root / "calib")
    return {"model": tiny_classifier(root / "best.keras", calibration),
            "calib": calibration, "root": root}


@pytest.fixture(scope="module")
def exported(files):
    from visionsuite.export import export_model

    return export_model(files["model"], "onnx", calibration_data=files["calib"], samples=8)


def test_onnx_export_parity_and_metadata(files, exported):
    from visionsuite.models import read_keras_metadata
    from visionsuite.runtime import load_runtime
    from visionsuite.runtime.metadata import read_metadata

    out = files["root"] / "best.onnx"
    assert exported["export"] == str(out) and out.is_file()
    parity = exported["parity"]
    assert parity["samples"] == 8 and parity["inputs"] == "calibration images"
    assert parity["max_abs_diff"] < 1e-4 and parity["argmax_agreement"] == 1.0
    saved = json.loads((files["root"] / "best.onnx.parity.json").read_text())
    assert saved["parity"] == parity and saved["format"] == "onnx"
    meta = read_metadata(out)
    source = read_keras_metadata(files["model"])
    assert meta.classes == CLASSES and meta.task == "classification"
    assert meta.extra["format"] == "onnx" and meta.record == source.record
    model = load_runtime(out)  # auto: an .onnx file runs in ONNX Runtime
    assert model.runtime == "onnx"
    batch = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    reference = load_runtime(files["model"], runtime="keras", batch_size=3)(batch)
    got = model(batch)  # batch 1 model, 3 inputs: run in chunks
    assert set(got) == {"probabilities"} and got["probabilities"].shape == (3, 3)
    np.testing.assert_allclose(got["probabilities"], reference["probabilities"], atol=1e-5)


def test_onnx_runtime_rejects_other_formats(files):
    from visionsuite.errors import UsageError
    from visionsuite.runtime import load_runtime

    with pytest.raises(UsageError, match="Received: model="):
        load_runtime(files["model"], runtime="onnx")


def test_two_outputs_keep_their_names(tmp_path):
    """Outputs of different shapes: a swapped mapping would show in the shapes."""
    import keras

    from visionsuite.runtime.onnx import OnnxModel, keras_to_onnx, read_onnx_metadata

    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    boxes = keras.layers.Reshape((5, 4), name="box_head")(keras.layers.Dense(20)(x))
    scores = keras.layers.Dense(5, activation="sigmoid", name="score_head")(x)
    model = keras.Model(inp, [boxes, scores])
    meta = ModelMetadata("toy_boxes", ("square",), 16,
                         outputs=(OutputSpec("boxes", (5, 4)), OutputSpec("scores", (5,))))
    path = keras_to_onnx(model, meta, tmp_path / "boxes.onnx")
    runner = OnnxModel(path, read_onnx_metadata(path), batch_size=2)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    got = runner(batch)
    want = model(batch)
    assert got["boxes"].shape == (2, 5, 4) and got["scores"].shape == (2, 5)
    np.testing.assert_allclose(got["boxes"], np.asarray(want[0]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["scores"], np.asarray(want[1]), rtol=1e-4, atol=1e-4)


def test_visionsuite_run_and_models_list_an_onnx_model(files, exported, tmp_path):
    from click.testing import CliRunner

    from visionsuite.cli import main

    out = files["root"] / "best.onnx"
    results = tmp_path / "out.jsonl"
    runner = CliRunner()
    proc = runner.invoke(main, ["run", "classification", "--source", str(files["calib"]),
                                "--model", str(out), "--results", str(results)])
    assert proc.exit_code == 0, proc.output
    lines = [json.loads(ln) for ln in results.read_text().splitlines()]
    assert len(lines) == 24 and all(ln["result"]["label"] in CLASSES for ln in lines)
    stats = json.loads(Path(str(results) + ".stats.json").read_text())
    assert stats["runtime"].startswith("onnx (") and stats["frames"] == 24
    listing = runner.invoke(main, ["models", str(files["root"])])
    assert any(ln.split()[0] == str(out) and " onnx " in ln and "task=classification" in ln
               for ln in listing.stdout.splitlines()), listing.stdout
