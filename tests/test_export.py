"""`visionsuite export`: SavedModel and TFLite (fp32, fp16, int8) with metadata, each followed
by a parity check against the Keras model that is printed and saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite.models import ModelMetadata, save_keras_model

SIZE = 32
CLASSES = ("red", "green", "blue")


def colour_images(folder, n=24):
    """Solid-colour images with noise: a calibration set the tiny model tells apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.clip(rng.uniform(0, 255, 3) + rng.normal(0, 10, (40, 40, 3)), 0, 255)
        cv2.imwrite(str(folder / f"{i:02d}.png"), img.astype(np.uint8))
    return folder


def tiny_classifier(path, calibration):
    """A tiny classifier whose logits are spread over the calibration colours."""
    import keras

    from visionsuite.backbones.registry import build_backbone
    from visionsuite_tasks.classification import ClassificationConfig, ClassificationTask

    keras.utils.set_random_seed(0)
    task = ClassificationTask(ClassificationConfig(image_size=SIZE))
    model = task.build_model(build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(4, 8)),
                             CLASSES)
    images = np.stack([cv2.resize(cv2.imread(str(p))[..., ::-1], (SIZE, SIZE))
                       for p in sorted(calibration.iterdir())]).astype(np.float32)
    dense = model.get_layer("logits")
    kernel = np.random.default_rng(0).normal(0, 1, dense.get_weights()[0].shape)
    logits = keras.Model(model.input, dense.input)(images).numpy() @ kernel
    scale = 4.0 / (logits.std() + 1e-6)
    dense.set_weights([(kernel * scale).astype("float32"),
                       (-logits.mean(0) * scale).astype("float32")])
    meta = ModelMetadata("classification", CLASSES, SIZE, "simple_cnn", {"image_size": SIZE})
    return save_keras_model(model, path, meta)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    calibration = colour_images(root / "calib")
    return {"model": tiny_classifier(root / "best.keras", calibration),
            "calib": calibration, "root": root}


def test_tflite_fp32_export_with_parity(files):
    from visionsuite.export import export_model
    from visionsuite.runtime import load_runtime

    report = export_model(files["model"], "tflite", calibration_data=files["calib"])
    out = files["root"] / "best.tflite"
    assert report["export"] == str(out) and out.is_file()
    parity = report["parity"]
    assert parity["inputs"] == "calibration images" and parity["samples"] == 16
    assert parity["max_abs_diff"] < 1e-4 and parity["argmax_agreement"] == 1.0
    saved = json.loads((files["root"] / "best.tflite.parity.json").read_text())
    assert saved["parity"] == parity and saved["quantize"] == "fp32"
    model = load_runtime(out)  # runs with no other information
    assert model.runtime == "tflite" and model.metadata.classes == CLASSES


def test_int8_and_fp16_exports(files):
    from visionsuite.export import export_model

    int8 = export_model(files["model"], "tflite", quantize="int8",
                        calibration_data=files["calib"])
    assert int8["export"].endswith("best.int8.tflite") and int8["quantize"] == "int8"
    # quantised: not bit-exact, but the same decisions on the calibration colours
    assert 0 < int8["parity"]["max_abs_diff"] < 0.2
    assert int8["parity"]["argmax_agreement"] >= 0.9
    fp16 = export_model(files["model"], "tflite", quantize="fp16")
    assert fp16["parity"]["inputs"] == "synthetic (seeded)"
    assert fp16["parity"]["max_abs_diff"] < 0.01


def test_savedmodel_export_via_cli(files, tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path / "sm"
    proc = subprocess.run([sys.executable, "-m", "visionsuite.cli", "export", "--model",
                           str(files["model"]), "--format", "savedmodel", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "parity vs Keras on 16 synthetic" in proc.stdout and "max abs diff" in proc.stdout
    assert (out / "saved_model.pb").is_file()
    meta = json.loads((out / "assets" / "visionsuite.json").read_text())
    assert meta["task"] == "classification" and meta["classes"] == list(CLASSES)
    report = json.loads((tmp_path / "sm.parity.json").read_text())
    assert report["parity"]["max_abs_diff"] < 1e-5


def test_export_usage_errors(files, tmp_path):
    from visionsuite.export import export_model

    with pytest.raises(UsageError, match="int8 quantisation needs --calibration-data"):
        export_model(files["model"], "tflite", quantize="int8")
    with pytest.raises(UsageError, match="TFLite exports only"):
        export_model(files["model"], "savedmodel", quantize="fp16")
    with pytest.raises(UsageError, match="must end in .tflite"):
        export_model(files["model"], "tflite", out=tmp_path / "m.bin")
    with pytest.raises(UsageError, match="--format must be one of"):
        export_model(files["model"], "coreml")
