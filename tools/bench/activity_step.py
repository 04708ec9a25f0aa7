#!/usr/bin/env python3
"""Per-frame cost of the causal streaming activity model's TFLite step vs the clip model.

Builds a :class:`StreamingClassifier` on a registry backbone (default EfficientNet-Lite0 at
160 px, random weights: the cost does not depend on the values), exports its one-frame step
to TFLite and times it with ``ai_edge_litert`` (one thread, batch 1, state fed back every
frame) on real frames (the carphone clip). For scale it also times the same model as a
sliding-window clip model (a TFLite export of the T-frame clip model, one call per frame), the
cost a window-based live classifier pays per output. MoViNet-A0-Stream's published cost is
about 16 ms a frame on one x86 core (172 px; no weights of it ship in any registry we use).

Usage:
    python tools/bench/activity_step.py --backbone efficientnet_lite0 --size 160 --frames 8
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (environment defaults)


def _time(fn, inputs, rounds):
    for x in inputs[:5]:
        fn(x)
    times = []
    for _ in range(rounds):
        for x in inputs:
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--frames", type=int, default=8, help="Clip length of the clip model.")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--motion", type=int, default=8)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--n", type=int, default=60, help="Frames timed per round.")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import cv2
    import keras
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from visionsuite import samples
    from visionsuite.backbones import build_backbone
    from visionsuite_tasks.activity.clips import read_frames
    from visionsuite_tasks.activity.models import Streamer, build_video_classifier, export_step_tflite

    video = samples.sample_video("carphone_pristine")
    frames = [cv2.resize(f, (args.size, args.size), interpolation=cv2.INTER_AREA).astype(np.float32)
              for f in read_frames(video, range(args.n))]
    bb = build_backbone(args.backbone, (args.size, args.size, 3))
    model = build_video_classifier("streaming", bb, args.classes, frames=args.frames,
                                   width=args.width, motion_channels=args.motion)
    with tempfile.TemporaryDirectory() as tmp:
        step = Streamer.from_tflite(export_step_tflite(model, Path(tmp) / "step.tflite"))
        step_ms = _time(step, frames, args.rounds)
        clip_in = keras.Input((args.frames, args.size, args.size, 3), batch_size=1, name="clip")
        fixed = keras.Model(clip_in, model(clip_in))    # the clip model with batch 1
        conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
        path = Path(tmp) / "clip.tflite"
        with contextlib.redirect_stdout(io.StringIO()):   # the converter prints a summary
            path.write_bytes(conv.convert())
        runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()
        name = next(iter(runner.get_input_details()))
        window = np.stack(frames[:args.frames])[None]
        clip_ms = _time(lambda _: runner(**{name: window}), frames[:max(10, args.n // 4)],
                        args.rounds)
    load = os.getloadavg()[0]
    print(f"{args.backbone} {args.size}px, width {args.width}, motion {args.motion}, "
          f"{model.count_params() / 1e6:.2f} M parameters, load average {load:.1f}")
    print(f"streaming step (TFLite fp32, 1 thread): {step_ms:.2f} ms a frame")
    print(f"sliding {args.frames}-frame clip model (TFLite fp32, 1 thread): {clip_ms:.2f} ms a "
          f"window = per output frame; ratio {clip_ms / step_ms:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
