#!/usr/bin/env python3
"""Run the default detector (NanoDet, 80 COCO classes) over a video and report how often it
finds a class -- by default: on how many frames of opencv-doc's vtest.avi (795 frames of
people walking in a street) at least one person is found.

Each frame is letterboxed to 416x416, run through the cached SavedModel
(tasks/detection/pretrained.py), decoded and filtered by NMS, and the boxes are mapped back to
source pixels. Prints the fraction of frames with a detection of --class, the mean count per
frame and the median milliseconds per frame (model with its in-graph decoding; NMS and box
mapping apart); --save-frame K writes frame K with its boxes. With --track, detections of --class down to the tracker's low
threshold feed the ByteTrack-style tracker, and the script reports the track ids: how many,
how long they last, and how many frames each id is seen on.

Usage:
    python tools/check_default_detector.py [--video datasets/samples/vtest.avi]
        [--class person] [--conf 0.35] [--every 1] [--save-frame 300 --out runs/vtest300.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None, help="default: vtest.avi")
    parser.add_argument("--class", dest="cls", default="person")
    parser.add_argument("--conf", type=float, default=0.35)
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--every", type=int, default=1, help="use every N-th frame")
    parser.add_argument("--save-frame", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/default_detector_frame.png"))
    parser.add_argument("--track", action="store_true", help="also track and report ids")
    parser.add_argument("--pad", type=int, default=114, help="letterbox grey level (0-255)")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import tensorflow as tf

    from visionsuite import samples
    from visionsuite.runtime import load_runtime
    from visionsuite_tasks.detection.boxes import letterbox
    from visionsuite_tasks.detection.nms import non_max_suppression
    from visionsuite_tasks.detection.pretrained import nanodet_model
    from visionsuite_tasks.detection.render import draw_detections
    from visionsuite_tasks.detection.tracking import ByteTracker

    tf.get_logger().setLevel("ERROR")
    model = load_runtime(nanodet_model())
    names = list(model.metadata.classes)
    target = names.index(args.cls)
    video = args.video or samples.sample_video("vtest")
    cap = cv2.VideoCapture(str(video))
    frames = hits = found = 0
    times, post_times = [], []
    tracker = ByteTracker() if args.track else None
    seen: dict[int, list[int]] = {}
    index = -1
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        if index % args.every:
            continue
        start = time.perf_counter()
        x, lb = letterbox(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), model.input_size,
                          pad_value=args.pad)
        boxes, scores = model(x[None].astype(np.float32))
        post = time.perf_counter()
        low = tracker.low_thresh if tracker else args.conf
        dets = non_max_suppression(boxes[0], scores[0], conf=min(low, args.conf), iou=args.iou)
        dets.boxes = lb.to_source(dets.boxes)
        now = time.perf_counter()
        times.append(now - start)
        post_times.append(now - post)
        ids = None
        if tracker is not None:
            dets = dets.select(dets.classes == target)
            ids = tracker.update(dets.boxes, dets.scores, dets.classes)
            for tid in ids[ids >= 0]:
                seen.setdefault(int(tid), []).append(index)
            shown = (dets.scores >= args.conf) | (ids >= 0)
            dets, ids = dets.select(shown), ids[shown]
        else:
            dets = dets.select(dets.scores >= args.conf)
        frames += 1
        n = int((dets.classes == target).sum())
        hits += n > 0
        found += n
        if index == args.save_frame:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.out), draw_detections(frame, dets.boxes, dets.scores,
                                                       dets.classes, class_names=names,
                                                       track_ids=ids))
            print(f"frame {index}: {len(dets)} detections drawn to {args.out}")
    cap.release()
    if not frames:
        print(f"error: no frames read from {video}", file=sys.stderr)
        return 1
    print(f"{video.name}: {args.cls} found on {hits}/{frames} frames ({hits / frames:.1%}) at "
          f"conf {args.conf}; {found / frames:.2f} per frame; "
          f"{1e3 * float(np.median(times)):.0f} ms/frame median, of which NMS + box mapping "
          f"{1e3 * float(np.median(post_times)):.1f} ms ({model.describe()})")
    if tracker is not None and seen:
        spans = np.array([v[-1] - v[0] + 1 for v in seen.values()])
        counts = np.array([len(v) for v in seen.values()])
        long = spans >= 50
        print(f"tracks: {len(seen)} ids; {int(long.sum())} last >= 50 frames, covering "
              f"{counts[long].sum() / max(1, counts.sum()):.1%} of the tracked boxes; median "
              f"span {int(np.median(spans))} frames, longest {int(spans.max())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
