#!/usr/bin/env python3
"""Time the detection NMS (tasks/detection/nms.py) on a YOLO-sized candidate set.

8400 anchors (640x640 at strides 8/16/32) x 80 classes, 20 objects with ~5 % of the anchors
scoring 0.3-0.95 for their object's class and the rest low scores, as a trained detector
gives. Prints median milliseconds for the confidence filter alone and for filter + NMS, at
the inference threshold (0.25) and at the mAP threshold (0.001).

Usage:
    python tools/bench/nms.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average  # noqa: E402

from visionsuite_tasks.detection.nms import non_max_suppression  # noqa: E402


def candidates(seed: int = 0, anchors: int = 8400, classes: int = 80, objects: int = 20):
    rng = np.random.default_rng(seed)
    centres, cls = rng.uniform(0, 640, (objects, 2)), rng.integers(0, classes, objects)
    pick = rng.integers(0, objects, anchors)
    xy = centres[pick] + rng.normal(0, 6, (anchors, 2))
    wh = rng.uniform(30, 80, (anchors, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).astype(np.float32)
    scores = (rng.uniform(0, 1, (anchors, classes)) ** 8 * 0.1).astype(np.float32)
    near = rng.random(anchors) < 0.05
    scores[near, cls[pick[near]]] = rng.uniform(0.3, 0.95, near.sum())
    return boxes, scores


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    boxes, scores = candidates()
    print(f"load average {load_average()}")
    for conf in (0.25, 0.001):
        n = int((scores.max(1) >= conf).sum())

        def filt():  # what non_max_suppression does first
            anchor = np.nonzero((scores >= conf).any(axis=1))[0]
            rows = scores[anchor]
            return rows[np.arange(len(anchor)), rows.argmax(axis=1)]

        kept = len(non_max_suppression(boxes, scores, conf=conf, iou=0.45, max_det=300))
        t_filter = timed(filt, args.repeats)
        t_all = timed(lambda: non_max_suppression(boxes, scores, conf=conf, iou=0.45,
                                                  max_det=300), args.repeats)
        print(f"conf {conf}: {n} candidates -> {kept} kept; filter {t_filter:.2f} ms, "
              f"filter + NMS {t_all:.2f} ms, NMS after the filter ~{t_all - t_filter:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
