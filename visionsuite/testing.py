"""Conformance checks for backbones, usable from any test suite (also by outside plugins).

A backbone family registered under the entry-point group ``visionsuite.backbones`` passes
when :func:`check_backbone` returns; each failed rule raises :class:`ConformanceError` (an
``AssertionError``, so pytest reports it as a plain test failure) with one clear message.

Example (in a plugin's tests)::

    import pytest
    from visionsuite.testing import check_backbone

    @pytest.mark.parametrize("name", ["my_backbone"])
    def test_conformance(name):
        check_backbone(name, input_size=64)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from visionsuite.backbones.registry import (
    LEVEL_STRIDES,
    Backbone,
    BackboneEntry,
    FeatureLevel,
    Preprocessing,
    _check_signature,
    build_backbone,
    get_backbone_entry,
    resolve_arch,
)
from visionsuite.errors import UsageError, VisionsuiteError

UNKNOWN_KWARG = "not_an_architecture_keyword"


class ConformanceError(AssertionError):
    """A backbone (or task) that breaks the visionsuite contract."""


def _fail(name: str, message: str):
    raise ConformanceError(f"backbone {name!r}: {message}")


def check_backbone_entry(entry: BackboneEntry) -> None:
    """Static rules, no model built: declared levels, preprocessing, keywords, weights info."""
    name = entry.name
    try:
        _check_signature(entry)
    except VisionsuiteError as exc:
        _fail(name, str(exc))
    levels = tuple(entry.levels(**entry.arch_defaults))
    if not levels or not all(isinstance(lv, FeatureLevel) for lv in levels):
        _fail(name, f"levels() must return FeatureLevel objects. Received: {levels!r}")
    strides = [lv.stride for lv in levels]
    if strides != sorted(set(strides)):
        _fail(name, f"level strides must be distinct and increasing. Received: {strides}")
    for lv in levels:
        if LEVEL_STRIDES.get(lv.name) != lv.stride or lv.channels < 1:
            _fail(name, f"level {lv.name} must have stride {LEVEL_STRIDES.get(lv.name)} and "
                        f"channels >= 1. Received: stride={lv.stride}, channels={lv.channels}")
    _check_preprocessing(name, entry.preprocessing)
    try:
        resolve_arch(entry, {UNKNOWN_KWARG: 1})
    except UsageError as exc:
        if "Received:" not in str(exc) or UNKNOWN_KWARG not in str(exc):
            _fail(name, f"the unknown-keyword error must name the keyword and what was "
                        f"received. Received: {exc}")
    else:
        _fail(name, f"accepted the unknown keyword {UNKNOWN_KWARG}=1")
    for weights in entry.pretrained:
        if entry.weights_source is None:
            _fail(name, f"has pretrained weights {entry.pretrained} but no weights_source")
        source = entry.weights_source(weights)
        if not (isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], str)
                and isinstance(source[1], bool)):
            _fail(name, f"weights_source({weights!r}) must return (description, is_present). "
                        f"Received: {source!r}")


def _check_preprocessing(name: str, spec: Preprocessing) -> None:
    if not isinstance(spec, Preprocessing):
        _fail(name, f"preprocessing must be a Preprocessing. Received: {spec!r}")
    if spec.channel_order not in ("RGB", "BGR"):
        _fail(name, f"channel_order must be RGB or BGR. Received: {spec.channel_order!r}")
    if spec.scale <= 0 or min(spec.std) <= 0:
        _fail(name, f"scale and std must be positive. Received: scale={spec.scale}, "
                    f"std={spec.std}")
    # Inputs are RGB 0..255: the normalised range of 0..255 must not collapse (a spec written
    # for 0..1 inputs applied twice would map 255 to about 1/255).
    low = (0.0 - np.asarray(spec.mean)) / np.asarray(spec.std)
    high = (255.0 * spec.scale - np.asarray(spec.mean)) / np.asarray(spec.std)
    if np.any(high - low < 0.9):
        _fail(name, f"preprocessing maps 0..255 to a range narrower than 0.9 "
                    f"({low.round(3).tolist()} .. {high.round(3).tolist()}); inputs are RGB "
                    f"0..255. Received: {spec}")


def check_backbone(name: str, input_size: int = 64, *, arch: Mapping[str, Any] | None = None,
                   batch: int = 2, check_normalization: bool = True) -> Backbone:
    """Build ``name`` at ``input_size`` and check it against its declared contract.

    Checks: the static rules of :func:`check_backbone_entry`; the model takes
    ``(batch, input_size, input_size, 3)`` float RGB in [0, 255]; its outputs are exactly the
    declared levels, each ``(batch, input_size / stride, input_size / stride, channels)`` and
    finite; unknown keywords are rejected; with ``check_normalization``, the tensor that
    reaches the first layer with trainable weights equals ``spec.preprocessing`` applied to the
    image (the normalisation the weights expect is inside the model, as declared).

    Returns:
        the built :class:`Backbone`, for further checks.
    """
    entry = get_backbone_entry(name)
    check_backbone_entry(entry)
    arch = dict(arch or {})
    try:
        build_backbone(name, (input_size, input_size, 3), **{UNKNOWN_KWARG: 1})
    except UsageError as exc:
        if "Received:" not in str(exc):
            _fail(name, f"unknown-keyword error lacks 'Received:'. Received: {exc}")
    else:
        _fail(name, f"build_backbone accepted {UNKNOWN_KWARG}=1")
    declared = {lv.name: lv for lv in entry.levels(**resolve_arch(entry, arch))}
    bb = build_backbone(name, (input_size, input_size, 3), **arch)
    model = bb.model
    if {lv.name: lv for lv in bb.spec.levels} != declared:
        _fail(name, f"spec levels differ from entry.levels(). Received: {bb.spec.levels}")
    shape = tuple(model.input.shape) if not isinstance(model.input, (list, tuple, dict)) else None
    if shape is None or shape[1:] != (input_size, input_size, 3):
        _fail(name, f"model must take one (H, W, 3) RGB image input. Received: "
                    f"{getattr(model, 'input_shape', None)}")
    if not isinstance(model.output, dict) or set(model.output) != set(declared):
        keys = sorted(model.output) if isinstance(model.output, dict) else type(model.output)
        _fail(name, f"outputs must be a dict with keys {sorted(declared)}. Received: {keys}")
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 255.0, (batch, input_size, input_size, 3)).astype("float32")
    outputs = model(images, training=False)
    for key, lv in declared.items():
        value = np.asarray(outputs[key])
        if input_size % lv.stride:
            _fail(name, f"input_size {input_size} is not a multiple of stride {lv.stride}")
        expected = (batch, input_size // lv.stride, input_size // lv.stride, lv.channels)
        if value.shape != expected:
            _fail(name, f"{key} must be (batch, size/stride, size/stride, channels) = "
                        f"{expected} for stride {lv.stride}. Received: {value.shape}")
        if not np.all(np.isfinite(value)):
            _fail(name, f"{key} has non-finite values for an RGB 0..255 input")
    if check_normalization:
        _check_normalization(name, bb, images)
    return bb


def normalized_input(model):
    """The tensor that reaches ``model``'s first layer with trainable weights (zero padding
    skipped): where the in-model normalisation ends."""
    import keras

    last = None
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)):
            continue
        if layer.trainable_weights:
            break
        last = layer
    return model.input if last is None else last.output


def _check_normalization(name: str, bb: Backbone, images: np.ndarray) -> None:
    import keras

    from visionsuite.backbones.layers import PixelNormalization

    got = np.asarray(keras.Model(bb.model.input, normalized_input(bb.model))(images))
    expected = np.asarray(PixelNormalization.from_spec(bb.spec.preprocessing)(images))
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-3):
        diff = (np.abs(got - expected).max() if got.shape == expected.shape
                else f"shape {got.shape}")
        _fail(name, f"the normalisation inside the model differs from the declared "
                    f"preprocessing {bb.spec.preprocessing} (max difference {diff})")


# === Tasks ===
def check_task(task, *, image_size: int = 32, classes=("a", "b", "c"), workdir=None,
               backbone: str | None = "", backbone_args=None, config=None) -> dict:
    """Run a task plugin through the whole contract, on tiny data the task makes itself.

    Static rules (a Task subclass with a name, a frozen Config, dataset formats, options that
    name Config fields), then: ``make_tiny_dataset`` -> ``load_dataset`` ->
    ``make_tf_dataset`` -> ``build_model`` on a tiny backbone -> one ``fit`` step ->
    ``evaluate`` (writing ``evaluation.json``) -> ``.keras`` save / safe-mode load round trip
    -> TFLite export with its parity check -> a short stream through the task's per-source
    state on the exported model, with ``render`` and ``to_record``.

    Args:
        task: a :class:`~visionsuite.task.Task` subclass or its registered name.
        image_size: side of the model input used for the check (tasks with ``image_size``).
        classes: class names given to the task (at least two).
        workdir: a folder for the files (default: a temporary folder).
        backbone / backbone_args: the registry backbone the head is put on (default a tiny
            ``simple_cnn`` for image and clip inputs; ``None`` hands ``build_model`` no
            backbone, the default for volumes).
        config: more task options for the check.

    Returns:
        What was measured: ``{"metrics": ..., "parity": ..., "predictions": n}``.

    Example (in a plugin's tests)::

        from visionsuite.testing import check_task

        def test_my_task_follows_the_contract(tmp_path):
            check_task("my_task", workdir=tmp_path)
    """
    import dataclasses
    import json
    import tempfile
    from pathlib import Path

    from visionsuite.plugins import get_task_class
    from visionsuite.task import REPORT_NAME, Prediction, Task, TaskConfig

    cls = get_task_class(task) if isinstance(task, str) else task
    label = f"task {getattr(cls, 'name', cls)!r}"

    def fail(message):
        raise ConformanceError(f"{label}: {message}")

    if not (isinstance(cls, type) and issubclass(cls, Task)):
        fail(f"must subclass visionsuite.task.Task. Received: {cls!r}")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        fail("must declare a non-empty string `name`")
    config_cls = cls.Config
    if not (dataclasses.is_dataclass(config_cls) and issubclass(config_cls, TaskConfig)):
        fail(f"Config must be a dataclass deriving from TaskConfig. Received: {config_cls!r}")
    if not config_cls.__dataclass_params__.frozen:
        fail("Config must be a frozen dataclass")
    if not cls.dataset_formats:
        fail("must list its dataset_formats")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for option in cls.options:
        if option.key not in fields:
            fail(f"option {option.cli_flag} sets {option.key!r}, which Config lacks")
    values = dict(config or {})
    if "image_size" in fields:
        values.setdefault("image_size", image_size)
    instance = cls(config_cls(**values))
    spec = instance.input_spec()
    outputs = tuple(instance.output_specs())
    if not outputs or len({o.name for o in outputs}) != len(outputs):
        fail(f"output_specs() must name at least one output, each once. Received: {outputs}")
    names = tuple(o.name for o in outputs)

    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="vs-check-"))
    folder.mkdir(parents=True, exist_ok=True)
    # === Data ===
    data_path = instance.make_tiny_dataset(folder / "data", list(classes))
    dataset = instance.load_dataset(data_path)
    if len(dataset) < 2:
        fail(f"load_dataset of make_tiny_dataset's data must give >= 2 samples. "
             f"Received: {len(dataset)}")
    train_classes = list(dataset.classes)
    ds = instance.make_tf_dataset(dataset, batch_size=2, training=True, seed=0)
    features, _ = next(iter(ds))
    first = features if not isinstance(features, dict) else features[spec.name]
    if tuple(first.shape[1:]) != spec.shape:
        fail(f"make_tf_dataset must yield inputs of the input spec {spec.shape}. "
             f"Received: {tuple(first.shape[1:])}")

    # === Model: one fit step, evaluate ===
    from visionsuite.training.trainer import backbone_input_shape

    if backbone == "":
        backbone = None if spec.layout == "DHWC" else "simple_cnn"
    bb_args = dict(backbone_args if backbone_args is not None else
                   ({"widths": (4, 8, 8, 8, 8), "depth": 1} if backbone == "simple_cnn" else {}))
    bb = build_backbone(backbone, backbone_input_shape(spec), **bb_args) if backbone else None
    model = instance.build_model(bb, train_classes)
    if tuple(model.input_shape[1:]) != spec.shape:
        fail(f"build_model must take inputs of the input spec (None, *{spec.shape}). "
             f"Received: {model.input_shape}")
    model.compile(optimizer="adam", loss=instance.loss(train_classes, dataset),
                  metrics=instance.metrics(train_classes), jit_compile=False)
    history = model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    loss = float(history.history["loss"][-1])
    if not np.isfinite(loss):
        fail(f"the fit step's loss is not finite. Received: {loss}")
    report_dir = folder / "evaluation"
    report_dir.mkdir(exist_ok=True)
    metrics = instance.evaluate(model, dataset, report_dir, batch_size=2)
    if not isinstance(metrics, dict) or not all(isinstance(v, (int, float))
                                                for v in metrics.values()):
        fail(f"evaluate must return a dict of numbers. Received: {metrics!r}")
    if not (report_dir / REPORT_NAME).is_file():
        fail(f"evaluate(out_dir=...) must write {REPORT_NAME}")

    # === Save / load / export ===
    from visionsuite.config import to_dict
    from visionsuite.export import export_model
    from visionsuite.models import ModelMetadata, load_keras_model, save_keras_model
    from visionsuite.runtime import load_runtime
    from visionsuite.runtime.backends import KerasModel

    meta = ModelMetadata(task=cls.name, classes=tuple(train_classes), input_spec=spec,
                         outputs=outputs, backbone=backbone, task_config=to_dict(instance.config))
    path = save_keras_model(model, folder / "model.keras", meta)
    loaded = load_keras_model(path)
    from visionsuite.export import synthetic_inputs

    probe = np.stack(synthetic_inputs(2, spec, seed=1))
    before = KerasModel(model, meta, path)(probe)
    after = KerasModel(loaded, meta, path)(probe)
    if set(before) != set(names):
        fail(f"the model's outputs must be {list(names)}. Received: {sorted(before)}")
    for k in names:
        if not np.allclose(before[k], after[k], atol=1e-5):
            fail(f"output {k!r} differs after a .keras save / load round trip")
    report = export_model(path, "tflite", out=folder / "model.tflite", samples=2, task=instance)
    if report["parity"]["max_abs_diff"] > 1e-3:
        fail(f"the TFLite export differs from Keras: {report['parity']}")

    # === Stream through the per-source state ===
    net = load_runtime(folder / "model.tflite")
    state = instance.new_state("conformance", net.metadata.input_spec, train_classes)
    rng = np.random.default_rng(0)
    if spec.layout == "DHWC":
        d, (h, w), c = spec.frames, spec.spatial, spec.channels
        items = [np.asarray(synthetic_inputs(1, type(spec)((d + d // 2, h + h // 2, w, c),
                                                           "DHWC"), seed=2)[0])]
    else:
        items = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                 for _ in range((spec.frames or 1) + 2)]
    predictions = 0
    for i, item in enumerate(items):
        for x, ctx in state.push(item.copy(), {"source": "conformance", "frame": i,
                                               "timestamp": 0.0}):
            out = {k: v[0] for k, v in net(np.asarray(x)[None]).items()}
            prediction = state.merge(out, ctx)
            if prediction is None:
                continue
            if not isinstance(prediction, Prediction):
                fail(f"postprocess must return a Prediction. Received: "
                     f"{type(prediction).__name__}")
            predictions += 1
            frame = item if item.ndim == 3 and item.dtype == np.uint8 else \
                rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            original = frame.copy()
            drawn = instance.render(frame, prediction)
            if not np.array_equal(frame, original):
                fail("render must not modify the input frame in place")
            if drawn.shape != frame.shape or drawn.dtype != np.uint8:
                fail(f"render must return a uint8 frame of the input's shape. Received: "
                     f"{drawn.dtype} {drawn.shape}")
            try:
                json.dumps(instance.to_record(prediction))
            except (TypeError, ValueError) as exc:
                fail(f"to_record must be JSON-serialisable ({exc})")
    if not predictions:
        fail("the stream through the task's state gave no prediction")
    return {"metrics": metrics, "parity": report["parity"], "predictions": predictions}


# === Streams ===
def write_test_video(path, n: int = 20, size: tuple[int, int] = (96, 64), fps: float = 10.0,
                     fourcc: str = "mp4v"):
    """Write a video of ``n`` frames (``size`` is width, height) whose frame ``i`` is filled
    with grey level ``10 * i % 256``, so frame indices can be checked after a round trip."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, tuple(size))
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8))
    writer.release()
    return path


def count_video_frames(path) -> tuple[int, float]:
    """Decode a video fully with OpenCV: ``(frames read, fps from its header)``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps
