"""End-to-end stream FPS divided by bare-model FPS on the same frames (acceptance: >= 0.95).

Bare: every frame of a 640x480 video is decoded and preprocessed beforehand, then only the
model calls are timed (batch 1, same runtime and threads). End to end: `visionsuite.run` on
the same file -- decode, preprocess, inference, postprocess, JSON-lines sink -- and, as a
second figure, the same with an annotated --save video. Rounds are interleaved; the ratio
of medians and the ratio of best rounds are reported with the machine's load average.

    python tools/bench/stream_vs_bare.py [--model imagenet:efficientnet_lite0] [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Clock, load_average, make_video, median, preprocessed_frames  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imagenet:efficientnet_lite0")
    parser.add_argument("--task", default="classification")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--save", action="store_true", help="also time a run with --save")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    import visionsuite
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import load_runtime

    work = Path(tempfile.mkdtemp(prefix="vs-bench-"))
    video = make_video(work / "clip_640x480.mp4", frames=args.frames)
    model = load_runtime(args.model, runtime=args.runtime, threads=args.threads)
    task = task_for_model(model.metadata, args.task, source=args.model)
    inputs = preprocessed_frames(video, task, model.input_spec)
    for x in inputs[:10]:  # warm-up
        model(x)

    def bare():
        with Clock() as c:
            for x in inputs:
                model(x)
        return len(inputs) / c.seconds

    def stream(save: bool):
        kwargs = {"save": work / "out.mp4"} if save else {}
        s = visionsuite.run(args.task, video, model=args.model, runtime=args.runtime,
                            threads=args.threads, results=work / "out.jsonl", **kwargs)
        n = sum(1 for _ in s)
        assert n == len(inputs), (n, len(inputs))
        return s.stats["fps"], s.stats

    results = {"bare": [], "stream": [], "stream_save": []}
    last_stats = None
    for _ in range(args.rounds):
        results["bare"].append(bare())
        fps, last_stats = stream(False)
        results["stream"].append(fps)
        if args.save:
            results["stream_save"].append(stream(True)[0])
    bare_fps = median(results["bare"])
    out = {
        "model": args.model, "runtime": model.describe(), "frames": len(inputs),
        "input": "640x480 mp4v (carphone, resized)", "load_average": load_average(),
        "bare_fps": round(bare_fps, 2),
        "stream_fps": round(median(results["stream"]), 2),
        "ratio": round(median(results["stream"]) / bare_fps, 3),
        # best round of each: the least disturbed by other processes on a shared machine
        "ratio_best": round(max(results["stream"]) / max(results["bare"]), 3),
        "rounds": {k: [round(v, 2) for v in vs] for k, vs in results.items() if vs},
        "stages_last_round": {k: v.get("mean_ms") for k, v in last_stats["stages"].items()},
        "rss_mb_last_round": last_stats["rss_mb"],
    }
    if results["stream_save"]:
        out["stream_save_fps"] = round(median(results["stream_save"]), 2)
        out["ratio_save"] = round(out["stream_save_fps"] / bare_fps, 3)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
