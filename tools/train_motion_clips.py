#!/usr/bin/env python3
"""Train the activity models on the synthetic motion clips and report held-out accuracy.

Generates the dataset with tools/make_motion_clips.py when ``--data`` does not exist, trains
a :class:`StreamingClassifier` (causal; dense windows of consecutive frames) and/or a
:class:`ClipClassifier` (TSN segments) on a registry backbone through the project's tf.data
pipeline (``ClipLoader`` + clip-consistent augmentation), then scores the test split:

* clip accuracy of the Keras model (centre clip of each test video);
* for the streaming model, also frame by frame: its step exported to TFLite and run with
  ``ai_edge_litert`` over every frame of each test video, the label at the last frame and
  the mean of the probabilities over the frames that have a full receptive field.

Usage:
    python tools/train_motion_clips.py --data /tmp/motion --out runs/motion --kind both
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_motion_clips",
                                                  ROOT / "tools" / "make_motion_clips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tf_dataset(ds, frames, size, *, training, sampling, batch_size, seed):
    import tensorflow as tf

    from visionsuite.data.pipeline import make_tf_dataset
    from visionsuite_tasks.activity.clips import ClipLoader, clip_transform

    loader = ClipLoader(frames, training=training, sampling=sampling, seed=seed)
    transform = clip_transform(frames, size, training=training, strength=0.3)
    return make_tf_dataset(
        ds, output_signature=(tf.TensorSpec((frames, size, size, 3), tf.float32),
                              tf.TensorSpec((), tf.int32)),
        batch_size=batch_size, training=training, load=loader, transform=transform,
        to_arrays=loader.to_arrays, seed=seed)


def _as_dict(ds):
    return ds.map(lambda x, y: (x, {"probabilities": y}))


def train(kind, data, args, out):
    import keras

    from visionsuite.backbones import build_backbone
    from visionsuite_tasks.activity.clips import load_video_dataset
    from visionsuite_tasks.activity.models import build_video_classifier

    sampling = "dense" if kind == "streaming" else "tsn"
    train_ds = load_video_dataset(data, split="train", min_frames=args.frames)
    val_ds = load_video_dataset(data, split="val", classes=train_ds.classes, min_frames=args.frames)
    keras.utils.set_random_seed(args.seed)
    backbone = build_backbone(args.backbone, (args.size, args.size, 3),
                              **json.loads(args.backbone_arch))
    head = dict(width=args.width, dropout=0.2, motion_channels=args.motion)
    if kind == "streaming":
        head.update(dilations=(1, 2), spatial_pool=args.spatial_pool)
    model = build_video_classifier(kind, backbone, len(train_ds.classes), frames=args.frames,
                                   level=args.level, **head)
    steps = args.epochs * -(-len(train_ds) // args.batch_size)
    lr = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=args.lr,
                                                warmup_steps=max(1, steps // 20))
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4),
                  loss={"probabilities": "sparse_categorical_crossentropy"},
                  metrics={"probabilities": ["accuracy"]}, jit_compile=False)
    fit_ds = _as_dict(_tf_dataset(train_ds, args.frames, args.size, training=True,
                                  sampling=sampling, batch_size=args.batch_size, seed=args.seed))
    val = _as_dict(_tf_dataset(val_ds, args.frames, args.size, training=False,
                               sampling=sampling, batch_size=args.batch_size, seed=0))
    start = time.perf_counter()
    history = model.fit(fit_ds, validation_data=val, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    path = out / f"{kind}.keras"
    model.save(path)
    return model, train_ds.classes, seconds, history.history, path


def evaluate(kind, model, classes, data, args, out):
    from visionsuite_tasks.activity.clips import load_video_dataset, read_frames
    from visionsuite_tasks.activity.models import Streamer, export_step_tflite

    sampling = "dense" if kind == "streaming" else "tsn"
    test_ds = load_video_dataset(data, split="test", classes=classes, min_frames=args.frames)
    test = _tf_dataset(test_ds, args.frames, args.size, training=False, sampling=sampling,
                       batch_size=args.batch_size, seed=0)
    probs = model.predict(test.map(lambda x, y: x), verbose=0)["probabilities"]
    labels = np.array([s.target for s in test_ds.samples])
    result = {"test_clips": len(test_ds), "clip_accuracy": float(np.mean(probs.argmax(-1) == labels))}
    if kind == "streaming":
        import cv2

        tflite = export_step_tflite(model, out / "streaming_step.tflite")
        stream = Streamer.from_tflite(tflite)
        last, mean, frame_times = [], [], []
        rf = model.receptive_field
        for sample in test_ds.samples:
            ref = sample.image
            frames = read_frames(ref, range(ref.start, ref.end))
            stream.reset()
            seq = []
            for f in frames:
                if f.shape[:2] != (args.size, args.size):
                    f = cv2.resize(f, (args.size, args.size), interpolation=cv2.INTER_AREA)
                t0 = time.perf_counter()
                seq.append(stream(f.astype(np.float32))["probabilities"])
                frame_times.append(time.perf_counter() - t0)
            seq = np.stack(seq)
            last.append(seq[-1].argmax())
            mean.append(seq[rf - 1:].mean(0).argmax())
        result.update(stream_last_frame_accuracy=float(np.mean(np.array(last) == labels)),
                      stream_mean_accuracy=float(np.mean(np.array(mean) == labels)),
                      tflite_ms_per_frame_p50=1000 * float(np.median(frame_times)),
                      tflite_file=str(tflite))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("datasets/generated/motion"))
    parser.add_argument("--out", type=Path, default=Path("runs/activity/motion"))
    parser.add_argument("--kind", choices=("streaming", "clip", "both"), default="both")
    parser.add_argument("--per-class", type=int, nargs=3, default=(60, 10, 20),
                        metavar=("TRAIN", "VAL", "TEST"), help="Clips per class to generate.")
    parser.add_argument("--video-frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8, help="Clip length T.")
    parser.add_argument("--backbone", default="simple_cnn")
    parser.add_argument("--backbone-arch", default='{"widths": [4, 8, 8], "depth": 1}',
                        help="JSON of the backbone's architecture keywords.")
    parser.add_argument("--level", default=None, help="Backbone level (default: the deepest).")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--motion", type=int, default=16,
                        help="Channels of the motion branch (0: none).")
    parser.add_argument("--spatial-pool", choices=("mean", "max"), default="max")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    if not args.data.exists():
        tr, va, te = args.per_class
        _generator().make_dataset(args.data, {"train": tr, "val": va, "test": te},
                                  size=args.size, frames=args.video_frames, seed=args.seed)
        print(f"generated {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {}
    for kind in (("streaming", "clip") if args.kind == "both" else (args.kind,)):
        model, classes, seconds, history, path = train(kind, args.data, args, args.out)
        result = evaluate(kind, model, classes, args.data, args, args.out)
        result.update(train_seconds=round(seconds, 1), model=str(path),
                      final_val_accuracy=history.get("val_accuracy", [None])[-1],
                      params=int(model.count_params()))
        report[kind] = result
        print(kind, json.dumps(result, indent=1), flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
