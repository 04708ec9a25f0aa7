"""`visionsuite predict` and its Python API on real image files with a tiny classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from visionsuite.errors import DataError, ModelError

SIZE = 32
CLASSES = ("red", "green", "blue")




def cli(*args):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "visionsuite.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def files(tmp_path_factory, save_tiny_classifier):
    from visionsuite.runtime import load_runtime

    root = tmp_path_factory.mktemp("predict")
    model = save_tiny_classifier(root / "tiny.keras", classes=CLASSES)
    load_runtime(model)  # the cached fp32 TFLite, shared by the CLI runs
    images = root / "images"
    images.mkdir()
    for name, colour in (("r.png", (0, 0, 255)), ("g.jpg", (0, 255, 0)), ("b.bmp", (255, 0, 0))):
        cv2.imwrite(str(images / name), np.full((48, 64, 3), colour, np.uint8))
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    return {"model": model, "images": images, "root": root,
            "other": save_tiny_classifier(root / "det.keras", task="detection", classes=CLASSES)}


def test_predict_api_matches_the_keras_model(files):
    from visionsuite.data.images import read_image
    from visionsuite.models import load_keras_model
    from visionsuite.predict import predict

    items = list(predict("classification", files["model"], [files["images"]],
                         overrides={"top_k": 2}))
    assert [os.path.basename(i.path) for i in items] == ["b.bmp", "g.jpg", "r.png"]
    keras_model = load_keras_model(files["model"])
    for item in items:
        x = cv2.resize(read_image(item.path), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        probs = np.asarray(keras_model(x[None].astype(np.float32)))[0]
        assert item.record["label"] == CLASSES[int(np.argmax(probs))]
        assert item.record["score"] == pytest.approx(float(probs.max()), abs=1e-4)
        assert len(item.record["top_k"]) == 2


def test_predict_cli_prints_top_k_and_writes_outputs(files, tmp_path):
    proc = cli("predict", "classification", "--model", files["model"], "--top-k", "2",
               "--out", tmp_path / "out", files["images"] / "r.png", files["images"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4  # r.png given twice: once alone, once in the folder
    path, summary = lines[0].split(": ", 1)
    assert path.endswith("r.png")
    labels = [part.rsplit(" ", 1) for part in summary.split(", ")]
    assert len(labels) == 2 and all(name in CLASSES and 0 <= float(s) <= 1 for name, s in labels)
    assert "broken.jpg" in proc.stderr  # skipped and reported
    records = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text()
               .splitlines()]
    assert len(records) == 4 and records[0]["result"]["label"] in CLASSES
    assert cv2.imread(str(tmp_path / "out" / "g.jpg")).shape == (48, 64, 3)


def test_predict_errors(files, tmp_path):
    from visionsuite.predict import predict

    with pytest.raises(ModelError, match="is a 'detection' model, not 'classification'"):
        list(predict("classification", files["other"], [files["images"]]))
    with pytest.raises(DataError, match="no such file or folder"):
        list(predict("classification", files["model"], [tmp_path / "nope.jpg"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no readable images"):
        list(predict("classification", files["model"], [empty]))
    proc = cli("predict", "classification", "--model", files["other"], files["images"])
    err = [x for x in proc.stderr.strip().splitlines() if not x.startswith("INFO:")]
    assert proc.returncode == 1 and len(err) == 1
    assert err[0].startswith("error: ") and "'detection' model" in err[0]


@pytest.mark.slow
def test_imagenet_efficientnet_lite0_recognises_the_cat():
    """The real pretrained model end to end: built once, converted to TFLite, cached."""
    from visionsuite import samples
    from visionsuite.assets import AssetError
    from visionsuite.predict import predict

    try:
        cat = samples.sample_photo("chelsea")
    except AssetError as exc:
        pytest.skip(f"sample photo not available offline: {exc}")
    try:
        (item,) = predict("classification", "imagenet:efficientnet_lite0", [cat])
    except AssetError as exc:
        pytest.skip(f"EfficientNet-Lite0 weights not available offline: {exc}")
    assert "cat" in item.record["label"] and item.record["score"] > 0.5
