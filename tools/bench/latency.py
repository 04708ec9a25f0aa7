"""Capture-to-result latency (p50, p95) on a paced live source with the newest-frame policy.

Debian's ffmpeg serves a 640x480 clip as MPEG-TS over HTTP on 127.0.0.1 at its real rate
(25 fps, `-re`); `visionsuite.run` reads it through the URL source and runs the model.
Acceptance: latency p95 under two inference times (the inference p50 of the same run).

    python tools/bench/latency.py [--model imagenet:efficientnet_lite0] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, make_video  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imagenet:efficientnet_lite0")
    parser.add_argument("--task", default="classification")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--policy", default="newest")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs ffmpeg (apt-get install ffmpeg)")

    import numpy as np

    import visionsuite
    from visionsuite.errors import VisionsuiteError
    from visionsuite.runtime import load_runtime

    load_runtime(args.model, runtime=args.runtime)  # convert/cache before the clock starts
    work = Path(tempfile.mkdtemp(prefix="vs-bench-lat-"))
    video = make_video(work / "clip.mp4", frames=int(args.fps * 12), fps=args.fps)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i",
         str(video), "-c:v", "mpeg2video", "-q:v", "4", "-g", "12", "-f", "mpegts", "-listen",
         "1", f"http://127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(40):
            try:
                stream = visionsuite.run(args.task, f"http://127.0.0.1:{port}", model=args.model,
                                         runtime=args.runtime, policy=args.policy,
                                         results=work / "r.jsonl", reconnect=0)
                break
            except VisionsuiteError:
                time.sleep(0.25)  # ffmpeg is not listening yet
        # the first seconds (the burst of frames buffered while FFmpeg probes the stream,
        # cold caches) are left out of the latency figures
        warmup, started, latencies = 3.0, time.monotonic(), []
        for result in stream:
            elapsed = time.monotonic() - started
            if elapsed > warmup:
                latencies.append(result.latency * 1000)
            if elapsed > args.seconds + warmup:
                stream.stop("done")
    finally:
        server.kill()
        server.wait()
    stats = stream.stats
    inf = stats["stages"]["inference"]
    lat = {"p50_ms": round(float(np.percentile(latencies, 50)), 2),
           "p95_ms": round(float(np.percentile(latencies, 95)), 2)}
    out = {"model": args.model, "runtime": stats["runtime"], "source_fps": args.fps,
           "policy": args.policy, "frames": stats["frames"], "frames_timed": len(latencies), "fps": stats["fps"],
           "dropped": stats["sources"][0]["dropped"], "latency_p50_ms": lat["p50_ms"],
           "latency_p95_ms": lat["p95_ms"], "inference_p50_ms": inf["p50_ms"],
           "inference_mean_ms": inf["mean_ms"], "inference_p95_ms": inf["p95_ms"],
           "p95_over_inference_p50": round(lat["p95_ms"] / inf["p50_ms"], 2),
           "stages_mean_ms": {k: v.get("mean_ms") for k, v in stats["stages"].items()},
           "load_average": load_average()}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
