#!/usr/bin/env python3
"""Sliding-window 3D inference over a 256^3 volume: speed and peak memory.

The volume is the real MNI152 T1 template (nilearn wheel) zero-padded to 256^3 and scaled to
[0, 1]; the model is a residual 3D U-Net (visionsuite_tasks.medical.models, random weights:
speed and memory do not depend on them) run as a ``tf.function`` on ``--window`` tiles with
``--overlap``. Prints JSON: seconds per volume, volumes per minute, tiles per second, the
process's peak RSS, the numpy peak while stitching (tracemalloc) and the stitcher's own
estimate.

Usage:
    python tools/bench/medical_sliding_window.py [--window 96] [--overlap 0.5] [--classes 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average  # noqa: E402


def main(argv=None) -> int:
    import numpy as np
    import tensorflow as tf

    from visionsuite import samples
    from visionsuite_tasks.medical import models, readers
    from visionsuite_tasks.medical.inference import SlidingWindow, peak_memory_bytes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=96)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--accumulate", default="float16")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    t1 = readers.read_nifti(samples.mni152_template()["t1"]).array.astype(np.float32)
    volume = np.zeros((256, 256, 256), np.float32)
    off = [(256 - n) // 2 for n in t1.shape]
    volume[off[0]:off[0] + t1.shape[0], off[1]:off[1] + t1.shape[1],
           off[2]:off[2] + t1.shape[2]] = t1 / t1.max()
    del t1
    win = (args.window,) * 3
    model = models.build_unet3d(win + (1,), args.classes, widths=(8, 16, 32, 64),
                                blocks=(1, 1, 1, 1))
    predict = tf.function(lambda x: model(x, training=False)["probabilities"],
                          reduce_retracing=True)
    predict(tf.zeros((args.batch,) + win + (1,)))  # trace once, outside the timing
    sw = SlidingWindow(win, overlap=args.overlap)

    def run():
        stitcher = sw.stitcher(volume.shape, args.classes, accumulate=args.accumulate)
        batch = []
        for tile_input, tile in sw.tiles(volume):
            batch.append((tile_input, tile))
            if len(batch) == args.batch:
                out = predict(np.stack([b[0] for b in batch])).numpy()
                for (_, t), o in zip(batch, out):
                    stitcher.push(t, o)
                batch = []
        if batch:
            pad = [b[0] for b in batch] + [batch[0][0]] * (args.batch - len(batch))
            out = predict(np.stack(pad)).numpy()
            for (_, t), o in zip(batch, out):
                stitcher.push(t, o)
        return stitcher

    tracemalloc.start()
    start = time.perf_counter()
    stitcher = run()
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    labels = stitcher.result()
    report = {
        "volume": "MNI152 T1 zero-padded to 256^3",
        "window": args.window, "overlap": args.overlap, "classes": args.classes,
        "batch": args.batch, "accumulate": args.accumulate, "tiles": len(stitcher.tiles),
        "seconds_per_volume": round(seconds, 2),
        "volumes_per_minute": round(60.0 / seconds, 3),
        "tiles_per_second": round(len(stitcher.tiles) / seconds, 2),
        "numpy_peak_mib_tracemalloc": round(traced_peak / 2**20, 1),
        # the stitcher's formula with the tiles this loop holds at once (batch in, stacked, out)
        "estimate_mib": round(peak_memory_bytes(
            volume.shape, win, args.classes, accumulate=args.accumulate,
            tiles_in_flight=2 * args.batch) / 2**20, 1),
        "process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                      1),
        "foreground_voxels": int((labels > 0).sum()),
        "load_average": load_average(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
