"""Pose path: MoveNet MultiPose keypoints -> per-person tracks -> keypoint-sequence actions.

* :class:`MoveNetMultiPose` runs MoveNet MultiPose Lightning (Google, Apache-2.0; up to 6
  people x 17 COCO keypoints; fetched by :func:`visionsuite.samples.movenet_multipose_tflite`)
  with ``ai_edge_litert`` on a letterboxed uint8 frame (default 256 x 256) and returns
  :class:`Pose` objects in the frame's pixel coordinates.
* :class:`PoseTracker` associates people across frames: IoU of the keypoint boxes, optimal
  one-to-one assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``), tracks kept
  for ``max_missed`` frames without a match; each track holds its last ``length`` poses.
* :func:`sequence_features` turns a ``(T, 17, 3)`` keypoint sequence into per-frame features
  that do not depend on where the person is or how big: the pose relative to the hip centre,
  the hip centre's motion since the first frame and per frame, all in units of the person's
  height, plus keypoint scores.
* :func:`synthesize_sequences` generates labelled sequences of the actions :data:`ACTIONS`
  from a 3D stick figure (joint-angle motion models, random heading, camera elevation, size,
  speed, phase and keypoint noise), projected to the image; :func:`build_pose_classifier` is a
  small temporal CNN over the features. Real keypoints from the sample videos are added as
  training data by tools/train_pose_actions.py.
* :func:`draw_poses` draws skeletons, track ids and action labels.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, ModelError, UsageError

ACTIONS = ("walk", "run", "sit_down", "fall", "wave", "stand")
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11),
         (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
# left <-> right keypoint pairs (for mirroring)
FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
FEATURES = 17 * 2 + 17 + 2 + 2


@dataclasses.dataclass
class Pose:
    """One person: ``keypoints`` ``(17, 3)`` as ``(x, y, score)`` in pixels, ``box``
    ``(x1, y1, x2, y2)`` in pixels, ``score`` of the person."""

    keypoints: np.ndarray
    box: np.ndarray
    score: float


# ============================================================================ MoveNet


class MoveNetMultiPose:
    """MoveNet MultiPose Lightning on ``ai_edge_litert``.

    Args:
        model_path: the ``.tflite`` file; default
            :func:`visionsuite.samples.movenet_multipose_tflite` (fetched once into the cache).
        input_size: side of the letterboxed square input (multiple of 32; 256 is MoveNet's
            usual size).
        min_score: people with a lower person score are dropped.
        num_threads: interpreter threads.

    Example:
        >>> movenet = MoveNetMultiPose()
        >>> poses = movenet(frame_rgb)        # list of Pose, pixel coordinates
    """

    def __init__(self, model_path: str | Path | None = None, *, input_size: int = 256,
                 min_score: float = 0.2, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        if model_path is None:
            from visionsuite.samples import movenet_multipose_tflite

            model_path = movenet_multipose_tflite()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"MoveNet model not found at {model_path}. Received: "
                             f"model_path={str(model_path)!r}")
        if int(input_size) % 32 or int(input_size) < 64:
            raise UsageError(f"input_size must be a multiple of 32, >= 64. Received: "
                             f"input_size={input_size!r}")
        self.input_size = int(input_size)
        self.min_score = float(min_score)
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=int(num_threads))
        detail = self.interpreter.get_input_details()[0]
        self.interpreter.resize_tensor_input(detail["index"], (1, self.input_size, self.input_size, 3))
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]

    def letterbox(self, image_rgb: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """``(canvas uint8 (S, S, 3), scale, pad_x, pad_y)``: the frame resized to fit,
        centred on a black square."""
        import cv2

        h, w = image_rgb.shape[:2]
        s = self.input_size
        scale = min(s / w, s / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((s, s, 3), np.uint8)
        px, py = (s - nw) // 2, (s - nh) // 2
        canvas[py:py + nh, px:px + nw] = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        return canvas, scale, px, py

    def __call__(self, image_rgb: np.ndarray) -> list[Pose]:
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise DataError(f"MoveNet takes an RGB uint8 frame (H, W, 3). Received: "
                            f"shape {image_rgb.shape}, dtype {image_rgb.dtype}")
        canvas, scale, px, py = self.letterbox(image_rgb)
        self.interpreter.set_tensor(self._input, canvas[None])
        self.interpreter.invoke()
        rows = self.interpreter.get_tensor(self._output)[0]   # (6, 56)
        s = self.input_size
        poses = []
        for row in rows:
            score = float(row[55])
            if score < self.min_score:
                continue
            yxs = row[:51].reshape(17, 3)
            kp = np.stack([(yxs[:, 1] * s - px) / scale, (yxs[:, 0] * s - py) / scale,
                           yxs[:, 2]], axis=1).astype(np.float32)
            y1, x1, y2, x2 = row[51:55]
            box = np.array([(x1 * s - px) / scale, (y1 * s - py) / scale,
                            (x2 * s - px) / scale, (y2 * s - py) / scale], np.float32)
            poses.append(Pose(kp, box, score))
        return poses


# ============================================================================ tracking


def keypoint_box(keypoints: np.ndarray, min_score: float = 0.2) -> np.ndarray:
    """``(x1, y1, x2, y2)`` around the keypoints scoring >= ``min_score`` (all if none)."""
    kp = np.asarray(keypoints)
    good = kp[kp[:, 2] >= min_score] if np.any(kp[:, 2] >= min_score) else kp
    return np.array([good[:, 0].min(), good[:, 1].min(), good[:, 0].max(), good[:, 1].max()],
                    np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``(N, 4)`` and ``(M, 4)`` (x1, y1, x2, y2)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclasses.dataclass
class Track:
    """One person followed across frames."""

    id: int
    poses: collections.deque          # last `length` Pose objects
    frames: collections.deque         # their frame indices
    missed: int = 0
    label: str | None = None          # the action label given by the caller
    label_score: float = 0.0

    @property
    def box(self) -> np.ndarray:
        return keypoint_box(self.poses[-1].keypoints)

    def keypoints(self) -> np.ndarray:
        """``(len, 17, 3)`` keypoint history, oldest first."""
        return np.stack([p.keypoints for p in self.poses])


class PoseTracker:
    """Associates poses across frames (IoU of keypoint boxes + Hungarian assignment).

    Args:
        iou_threshold: a pose joins a track only with IoU >= this.
        max_missed: frames a track survives without a match.
        length: poses kept per track (the classifier's sequence length).

    Example:
        >>> tracker = PoseTracker(length=16)
        >>> for i, frame in enumerate(frames):
        ...     tracks = tracker.update(movenet(frame), frame=i)   # tracks seen this frame
    """

    def __init__(self, iou_threshold: float = 0.2, max_missed: int = 5, length: int = 16):
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.length = int(length)
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, poses: Sequence[Pose], frame: int) -> list[Track]:
        from scipy.optimize import linear_sum_assignment

        boxes = np.array([keypoint_box(p.keypoints) for p in poses]).reshape(-1, 4)
        live = list(self.tracks)
        matched_tracks, matched_poses = set(), set()
        if live and len(poses):
            iou = box_iou(np.array([t.box for t in live]), boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold:
                    live[r].poses.append(poses[c])
                    live[r].frames.append(frame)
                    live[r].missed = 0
                    matched_tracks.add(r)
                    matched_poses.add(c)
        for r, t in enumerate(live):
            if r not in matched_tracks:
                t.missed += 1
        self.tracks = [t for t in live if t.missed <= self.max_missed]
        seen = [t for r, t in enumerate(live) if r in matched_tracks]
        for c, pose in enumerate(poses):
            if c not in matched_poses:
                track = Track(self._next_id, collections.deque([pose], maxlen=self.length),
                              collections.deque([frame], maxlen=self.length))
                self._next_id += 1
                self.tracks.append(track)
                seen.append(track)
        return seen


# ============================================================================ features


def sequence_features(keypoints: np.ndarray) -> np.ndarray:
    """``(T, 17, 3)`` keypoints (pixels, scores) -> ``(T, FEATURES)`` float32 features.

    Per frame: the 17 keypoints relative to the hip centre, the keypoint scores, the hip
    centre's offset from the first frame and its velocity; lengths in units of the person's
    height (the median over the sequence of the keypoint box's larger side).
    """
    kp = np.asarray(keypoints, np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise DataError(f"keypoint sequences are (frames, 17, 3). Received: shape {kp.shape}")
    sides = [max(b[2] - b[0], b[3] - b[1]) for b in (keypoint_box(k) for k in kp)]
    scale = max(float(np.median(sides)), 1e-3)
    hips = kp[:, 11:13, :2].mean(axis=1)                               # (T, 2)
    rel = (kp[:, :, :2] - hips[:, None]) / scale                        # (T, 17, 2)
    offset = (hips - hips[:1]) / scale
    velocity = np.diff(hips, axis=0, prepend=hips[:1]) / scale
    return np.concatenate([rel.reshape(len(kp), -1), kp[:, :, 2], offset, velocity],
                          axis=1).astype(np.float32)


def mirror(keypoints: np.ndarray, width: float) -> np.ndarray:
    """The sequence seen in a mirror: x flipped and left / right keypoints swapped."""
    kp = np.array(keypoints, np.float32)[..., FLIP, :]
    kp[..., 0] = width - kp[..., 0]
    return kp


# ============================================================================ motion models

# Body proportions in units of the person's height (hips at the origin, z up, x forward).
_THIGH, _SHIN, _UPPER_ARM, _FOREARM = 0.245, 0.245, 0.17, 0.15
_SPINE, _HIP_HALF, _SHOULDER_HALF = 0.30, 0.085, 0.11


def _rot_y(a):   # pitch: rotation about the lateral (y) axis; positive tips forward
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):   # heading
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _limb(origin, swing, bend, l1, l2, side=0.0):
    """Two-segment limb hanging down from ``origin``: ``swing`` forward angle of the upper
    segment, ``bend`` extra angle of the lower one, ``side`` sideways raise."""
    d1 = np.array([np.sin(swing) * np.cos(side), np.sin(side), -np.cos(swing) * np.cos(side)])
    mid = origin + l1 * d1
    a2 = swing + bend
    d2 = np.array([np.sin(a2) * np.cos(side), np.sin(side), -np.cos(a2) * np.cos(side)])
    return mid, mid + l2 * d2


def _skeleton(p: dict) -> np.ndarray:
    """17 keypoints in 3D body coordinates from joint angles (radians)."""
    lean = _rot_y(p["lean"])
    spine_top = lean @ np.array([0.0, 0.0, _SPINE])
    sh = {s: spine_top + lean @ np.array([0.0, s * _SHOULDER_HALF, 0.0]) for s in (1, -1)}
    head = spine_top + lean @ np.array([0.03, 0.0, 0.12])
    pts = np.zeros((17, 3))
    pts[0] = head + lean @ np.array([0.05, 0.0, 0.0])
    pts[1], pts[2] = (head + lean @ np.array([0.04, s * 0.03, 0.02]) for s in (1, -1))
    pts[3], pts[4] = (head + lean @ np.array([0.0, s * 0.06, 0.01]) for s in (1, -1))
    pts[5], pts[6] = sh[1], sh[-1]
    for i, s, key in ((7, 1, "l"), (8, -1, "r")):
        elbow, wrist = _limb(sh[s], p[f"arm_{key}"], p[f"elbow_{key}"], _UPPER_ARM, _FOREARM,
                             s * p[f"raise_{key}"])
        pts[i], pts[i + 2] = elbow, wrist
    for i, s, key in ((11, 1, "l"), (12, -1, "r")):
        hip = np.array([0.0, s * _HIP_HALF, 0.0])
        knee, ankle = _limb(hip, p[f"leg_{key}"], -p[f"knee_{key}"], _THIGH, _SHIN)
        pts[i], pts[i + 2], pts[i + 4] = hip, knee, ankle
    return pts


def _angles(action: str, t: np.ndarray, rng) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Joint angles per frame, hip position on the ground plane (x fwd, y) and hip height,
    and the body's pitch, for ``t`` in seconds."""
    n = len(t)
    base = dict(lean=0.0, arm_l=0.0, arm_r=0.0, elbow_l=0.15, elbow_r=0.15, raise_l=0.05,
                raise_r=0.05, leg_l=0.0, leg_r=0.0, knee_l=0.02, knee_r=0.02)
    frames = [dict(base) for _ in range(n)]
    forward = np.zeros(n)
    height = np.full(n, _THIGH + _SHIN)
    pitch = np.zeros(n)
    phase = rng.uniform(0, 2 * np.pi)
    if action in ("walk", "run"):
        run = action == "run"
        freq = rng.uniform(1.3, 1.7) if run else rng.uniform(0.8, 1.1)   # strides per second
        amp = rng.uniform(0.45, 0.7) if run else rng.uniform(0.25, 0.4)
        speed = (rng.uniform(1.6, 2.6) if run else rng.uniform(0.55, 0.95))  # heights / s
        w = 2 * np.pi * freq * t + phase
        for i, f in enumerate(frames):
            f["leg_l"], f["leg_r"] = amp * np.sin(w[i]), -amp * np.sin(w[i])
            f["knee_l"] = (1.4 if run else 0.6) * max(0.0, np.sin(w[i] + 2.0)) + 0.05
            f["knee_r"] = (1.4 if run else 0.6) * max(0.0, np.sin(w[i] + 2.0 + np.pi)) + 0.05
            f["arm_l"], f["arm_r"] = -0.8 * amp * np.sin(w[i]), 0.8 * amp * np.sin(w[i])
            f["elbow_l"] = f["elbow_r"] = 1.4 if run else 0.25
            f["lean"] = 0.2 if run else 0.03
        forward = speed * t
        height = (_THIGH + _SHIN) * (np.cos(amp) + (0.05 if run else 0.02) * np.abs(np.sin(w)))
    elif action == "stand":
        for i, f in enumerate(frames):
            f["lean"] = 0.02 * np.sin(0.5 * t[i] + phase)
            f["arm_l"] = f["arm_r"] = rng.uniform(-0.1, 0.1) if i == 0 else frames[0]["arm_l"]
        forward = 0.01 * np.sin(0.7 * t + phase)
    elif action == "wave":
        side = rng.choice(["l", "r"])
        freq = rng.uniform(1.5, 3.0)
        for i, f in enumerate(frames):
            f[f"raise_{side}"] = rng.uniform(1.9, 2.3) if i == 0 else frames[0][f"raise_{side}"]
            f[f"arm_{side}"] = 0.2
            f[f"elbow_{side}"] = 0.6 * np.sin(2 * np.pi * freq * t[i] + phase)
    elif action == "sit_down":
        start, dur = rng.uniform(0.0, 0.5), rng.uniform(0.6, 1.2)
        for i, f in enumerate(frames):
            a = np.clip((t[i] - start) / dur, 0, 1)
            a = a * a * (3 - 2 * a)
            f["leg_l"] = f["leg_r"] = a * 1.5
            f["knee_l"] = f["knee_r"] = a * 1.5 + 0.02
            f["lean"] = 0.35 * np.sin(np.pi * a) + 0.1 * a
            f["arm_l"] = f["arm_r"] = 0.3 * a
        progress = np.clip((t - start) / dur, 0, 1)
        progress = progress * progress * (3 - 2 * progress)
        height = (_THIGH + _SHIN) * (1 - progress) + (_SHIN + 0.02) * progress
        forward = -0.15 * progress
    elif action == "fall":
        start, dur = rng.uniform(0.0, 0.5), rng.uniform(0.35, 0.7)
        direction = rng.choice([-1.0, 1.0])
        progress = np.clip((t - start) / dur, 0, 1) ** 2
        pitch = direction * (np.pi / 2 - 0.1) * progress
        height = (_THIGH + _SHIN) * (1 - progress) + 0.08 * progress
        for i, f in enumerate(frames):
            f["arm_l"] = f["arm_r"] = -direction * 1.2 * progress[i]
            f["knee_l"] = f["knee_r"] = 0.3 * progress[i]
        forward = direction * 0.4 * progress
    else:
        raise UsageError(f"unknown action {action!r}. Choose from {ACTIONS}. Received: {action!r}")
    return frames, forward, height, pitch


def synthesize_keypoints(action: str, rng: np.random.Generator, *, frames: int = 16,
                         fps: float = 10.0, image_size: tuple[int, int] = (576, 768)) -> np.ndarray:
    """One ``(frames, 17, 3)`` keypoint sequence of ``action`` in pixels of an image of
    ``image_size`` (height, width), with MoveNet-like scores and noise."""
    t = np.arange(frames) / fps + rng.uniform(0, 1.0)
    angles, forward, height, pitch = _angles(action, t, rng)
    heading = rng.uniform(-np.pi, np.pi)
    elevation = rng.uniform(0.0, 0.6)
    px_height = rng.uniform(60, 220)
    h, w = image_size
    origin = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.3, 0.85) * h])
    out = np.zeros((frames, 17, 3), np.float32)
    rot = _rot_z(heading)
    for i in range(frames):
        body = _skeleton(angles[i]) @ _rot_y(pitch[i]).T
        world = (body + np.array([forward[i], 0.0, height[i]])) @ rot.T   # x, y ground, z up
        u = world[:, 0]
        v = -world[:, 2] * np.cos(elevation) - world[:, 1] * np.sin(elevation)
        out[i, :, 0] = origin[0] + px_height * u
        out[i, :, 1] = origin[1] + px_height * v
    out[..., :2] += rng.normal(0, rng.uniform(0.005, 0.02) * px_height, out[..., :2].shape)
    out[..., 2] = rng.uniform(0.3, 0.9, (frames, 17))
    drop = rng.random((frames, 17)) < rng.uniform(0.0, 0.08)
    out[..., 2][drop] = rng.uniform(0.0, 0.15, drop.sum())
    return out


def synthesize_sequences(n_per_action: int, seed: int = 0, *, frames: int = 16,
                         fps: float = 10.0, actions: Sequence[str] = ACTIONS):
    """``(keypoints (N, frames, 17, 3), labels (N,))`` with ``n_per_action`` of each action
    (deterministic by ``seed``)."""
    xs, ys = [], []
    for a, action in enumerate(actions):
        for i in range(int(n_per_action)):
            rng = np.random.default_rng([seed, a, i])
            xs.append(synthesize_keypoints(action, rng, frames=frames, fps=fps))
            ys.append(a)
    return np.stack(xs), np.array(ys, np.int32)


# ============================================================================ classifier


def build_pose_classifier(num_classes: int = len(ACTIONS), frames: int = 16, width: int = 64,
                          dropout: float = 0.2):
    """Temporal CNN over :func:`sequence_features`: input ``"keypoint_features"``
    ``(frames, FEATURES)``, output ``{"probabilities": (num_classes,)}``."""
    import keras

    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be >= 2. Received: num_classes={num_classes!r}")
    inputs = keras.Input((frames, FEATURES), name="keypoint_features")
    x = keras.layers.Conv1D(width, 3, padding="same", activation="relu", name="tconv1")(inputs)
    x = keras.layers.Conv1D(width, 3, padding="same", dilation_rate=2, activation="relu",
                            name="tconv2")(x)
    x = keras.layers.Conv1D(width, 3, padding="same", dilation_rate=4, activation="relu",
                            name="tconv3")(x)
    x = keras.layers.GlobalAveragePooling1D(name="temporal_mean")(x)
    x = keras.layers.Dropout(float(dropout), name="dropout")(x)
    x = keras.layers.Dense(int(num_classes), name="classifier")(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, {"probabilities": probs}, name="pose_action_classifier")


# ============================================================================ drawing


def _colour(i: int) -> tuple[int, int, int]:
    palette = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
               (145, 30, 180), (70, 240, 240), (240, 50, 230))
    r, g, b = palette[i % len(palette)]
    return (b, g, r)


def draw_poses(image_bgr: np.ndarray, tracks: Sequence[Track], min_score: float = 0.2) -> np.ndarray:
    """Skeletons of the tracks' latest poses, with ``#id label score`` above each person."""
    import cv2

    out = image_bgr.copy()
    for track in tracks:
        kp = track.poses[-1].keypoints
        colour = _colour(track.id)
        for a, b in EDGES:
            if kp[a, 2] >= min_score and kp[b, 2] >= min_score:
                cv2.line(out, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]),
                         colour, 2, cv2.LINE_AA)
        for x, y, s in kp:
            if s >= min_score:
                cv2.circle(out, (int(x), int(y)), 3, colour, -1, cv2.LINE_AA)
        x1, y1, _, _ = track.box
        text = f"#{track.id} {track.label or '...'}"
        if track.label:
            text += f" {track.label_score:.2f}"
        org = (int(x1), max(12, int(y1) - 6))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out
