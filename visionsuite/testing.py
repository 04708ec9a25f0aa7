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
def check_task(task, *, image_size: int = 32, classes=("a", "b", "c")) -> None:
    """Run a task plugin through the whole contract on a tiny ``simple_cnn``.

    Args:
        task: a :class:`~visionsuite.task.Task` subclass or its registered name.
        image_size: side of the square model input used for the check.
        classes: class names given to the task (at least two).

    Example (in a plugin's tests)::

        from visionsuite.testing import check_task

        def test_my_task_follows_the_contract():
            check_task("my_task")
    """
    import dataclasses
    import json

    import albumentations as A

    from visionsuite.plugins import get_task_class
    from visionsuite.task import Prediction, Task, TaskConfig

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
    instance = cls(config_cls(image_size=image_size))
    for which in ("train_transforms", "eval_transforms"):
        if not isinstance(getattr(instance, which)(), A.BaseCompose):
            fail(f"{which}() must return an Albumentations Compose")

    backbone = build_backbone("simple_cnn", (image_size, image_size, 3), widths=(4, 8, 8, 8, 8),
                              depth=1)
    model = instance.build_model(backbone, list(classes))
    if tuple(model.input_shape) != (None, image_size, image_size, 3):
        fail(f"build_model must take (None, {image_size}, {image_size}, 3) RGB inputs. "
             f"Received: {model.input_shape}")
    instance.loss(list(classes))
    instance.metrics(list(classes))

    rng = np.random.default_rng(0)
    frame_bgr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    original = frame_bgr.copy()
    x, meta = instance.preprocess(frame_bgr[..., ::-1].copy(), image_size)
    if x.shape != (image_size, image_size, 3) or x.dtype != np.float32:
        fail(f"preprocess must return float32 ({image_size}, {image_size}, 3). "
             f"Received: {x.dtype} {x.shape}")
    meta = dict(meta, source="conformance", frame=0)
    raw = np.asarray(model(x[None], training=False))[0]
    prediction = instance.postprocess(raw, meta, list(classes))
    if not isinstance(prediction, Prediction):
        fail(f"postprocess must return a Prediction. Received: {type(prediction).__name__}")
    drawn = instance.render(frame_bgr, prediction)
    if not np.array_equal(frame_bgr, original):
        fail("render must not modify the input frame in place")
    if drawn.shape != frame_bgr.shape or drawn.dtype != np.uint8:
        fail(f"render must return a uint8 frame of the input's shape. Received: "
             f"{drawn.dtype} {drawn.shape}")
    record = instance.to_record(prediction)
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        fail(f"to_record must be JSON-serialisable ({exc})")


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
