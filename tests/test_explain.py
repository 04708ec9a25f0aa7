"""Grad-CAM / Grad-CAM++: a tiny classifier trained where the class is decided by one
object (a red vs a green square) among a distractor present in every image must put the map's peak
on that object; the CLI writes overlays; the layer comes from the declared levels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

SIZE = 48
CLASSES = ("green", "red")


def scene(rng, label):
    """Noise, a blue bar (distractor, in every image) and the class object: a red or a green
    square at a random place."""
    img = rng.integers(0, 50, (SIZE, SIZE, 3)).astype(np.uint8)
    while True:
        cx, cy = (int(v) for v in rng.integers(8, SIZE - 8, 2))
        bx, by = (int(v) for v in rng.integers(4, SIZE - 16, 2))
        if abs(cx - (bx + 6)) > 12 or abs(cy - (by + 2)) > 10:
            break
    img[by:by + 4, bx:bx + 12] = (40, 60, 255)  # RGB blue bar
    img[cy - 5:cy + 6, cx - 5:cx + 6] = (255, 40, 40) if label else (40, 255, 40)
    return img, (cx, cy)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import keras

    from visionsuite.backbones.registry import build_backbone
    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite.plugins import get_task_class

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    data = [scene(rng, i % 2) for i in range(192)]
    x = np.stack([d[0] for d in data]).astype(np.float32)
    y = np.arange(len(data)) % 2
    cls = get_task_class("classification")
    task = cls(cls.Config(image_size=SIZE))
    backbone = build_backbone("simple_cnn", (SIZE, SIZE, 3), widths=(8, 16, 32))
    model = task.build_model(backbone, CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("explain")
    meta = ModelMetadata("classification", CLASSES, SIZE, "simple_cnn", {"image_size": SIZE},
                         extra={"backbone_args": dict(backbone.spec.arch)})
    path = save_keras_model(model, root / "shapes.keras", meta)
    test_rng = np.random.default_rng(123)
    tests = [scene(test_rng, i % 2) + (i % 2,) for i in range(24)]
    accuracy = float((model(np.stack([t[0] for t in tests]).astype(np.float32)).numpy()
                      .argmax(-1) == np.array([t[2] for t in tests])).mean())
    return path, tests, accuracy, root


def test_map_peaks_on_the_deciding_object(trained):
    from visionsuite.explain import Explainer, peak
    from visionsuite.models import load_keras_model, read_keras_metadata

    path, tests, accuracy, _ = trained
    assert accuracy >= 0.9  # otherwise the map has nothing to show
    explainer = Explainer(load_keras_model(path), read_keras_metadata(path))
    assert explainer.level == "P3" and explainer.stride == 8  # deepest declared level
    for method in ("gradcam", "gradcam++"):
        hits = 0
        for img, (cx, cy), label in tests:
            cam = explainer.explain(img[None].astype(np.float32), label, (method,))[method][0]
            px, py = peak(cam, SIZE, SIZE)
            hits += abs(px - cx) <= 8 and abs(py - cy) <= 8  # within one stride of the object
        print(f"{method}: {hits}/{len(tests)} peaks on the object (accuracy {accuracy:.2f})")
        # a peak placed at random lands within 8 px of the object ~13% of the time
        assert hits >= 0.8 * len(tests), f"{method}: {hits}/{len(tests)} peaks on the object"


def test_cli_writes_overlays_and_records(trained, tmp_path):
    from click.testing import CliRunner

    from visionsuite.cli import main

    path, tests, _, _ = trained
    images = tmp_path / "images"
    images.mkdir()
    for i, (img, _, _) in enumerate(tests[:3]):
        cv2.imwrite(str(images / f"{i}.png"), img[..., ::-1])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["explain", "classification", str(images), "--model",
                                       str(path), "--out", str(out), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    records = [json.loads(ln) for ln in (out / "explanations.jsonl").read_text().splitlines()]
    assert len(records) == 6 and {r["class"] for r in records} == set(CLASSES)
    for r in records:
        for name in r["overlays"].values():
            overlay = cv2.imread(str(out / name))
            assert overlay.shape == (SIZE, SIZE, 3)
    one = CliRunner().invoke(main, ["explain", "classification", str(images / "0.png"),
                                    "--model", str(path), "--out", str(tmp_path / "o2"),
                                    "--class", "red", "--method", "gradcam", "--level", "P2"])
    assert one.exit_code == 0, one.output
    rec = json.loads((tmp_path / "o2" / "explanations.jsonl").read_text())
    assert rec["class"] == "red" and rec["level"] == "P2" and list(rec["overlays"]) == ["gradcam"]
    bad = CliRunner().invoke(main, ["explain", "classification", str(images), "--model",
                                    str(path), "--out", str(tmp_path / "o3"), "--level", "P9"])
    assert bad.exit_code == 2 and "declares levels" in bad.stderr and "Received:" in bad.stderr


def test_segmentation_class_region_maps(tmp_path):
    """A segmentation model: the score is the class's logits (before the Softmax layer)
    summed over its predicted region; maps come out at the level's resolution."""
    from visionsuite.backbones.registry import build_backbone
    from visionsuite.explain import Explainer
    from visionsuite.models import (ModelMetadata, load_keras_model, read_keras_metadata,
                                    save_keras_model)
    from visionsuite.plugins import get_task_class

    cls = get_task_class("segmentation")
    task = cls(cls.Config(image_size=32))
    backbone = build_backbone("simple_cnn", (32, 32, 3), widths=(8, 16))
    model = task.build_model(backbone, ["background", "thing"])
    meta = ModelMetadata("segmentation", ("background", "thing"), 32, "simple_cnn",
                         {"image_size": 32}, outputs=tuple(task.output_specs()),
                         extra={"backbone_args": dict(backbone.spec.arch)})
    path = save_keras_model(model, tmp_path / "seg.keras", meta)
    explainer = Explainer(load_keras_model(path), read_keras_metadata(path))
    assert explainer.level == "P2"
    scores = explainer._model.outputs[1]
    assert tuple(scores.shape[1:]) == (32, 32, 2) and scores is not explainer._model.outputs[2]
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    maps = explainer.explain(x, 1)
    for cam in maps.values():
        assert cam.shape == (2, 8, 8) and np.isfinite(cam).all()
        assert cam.min() >= 0 and cam.max() <= 1
