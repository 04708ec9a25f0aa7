"""Soak: resident memory (RSS) over a long looped live stream, printed as growth %.

Debian's ffmpeg serves a 640x480 clip looped forever (``-stream_loop -1``) as MPEG-TS over
HTTP on 127.0.0.1; ``visionsuite.run`` reads it through the URL source with the newest-frame
policy, writes JSON lines (and with ``--save`` an annotated video) and stops after
``--frames`` results. RSS is sampled every ``--every`` results. Growth is measured from the
sample after the warm-up (``--warmup`` fraction of the run: model load, first buffers,
allocator pools) to the end; a leak of one frame buffer per result (0.9 MB at 640x480) would
show as hundreds of percent.

    python tools/bench/soak.py [--frames 10000] [--model imagenet:efficientnet_lite0] [--save]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, make_video  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imagenet:efficientnet_lite0")
    parser.add_argument("--task", default="classification")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--every", type=int, default=250, help="RSS sample period in results")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="fraction of the run before the growth baseline")
    parser.add_argument("--fps", type=float, default=0.0,
                        help="serve at this rate (ffmpeg -re at the clip's 25 fps when > 0); "
                             "0: as fast as the pipeline reads")
    parser.add_argument("--save", action="store_true", help="also write an annotated video")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs ffmpeg (apt-get install ffmpeg)")

    import visionsuite
    from visionsuite.runtime import load_runtime

    load_runtime(args.model, runtime=args.runtime)  # convert/cache before measuring
    work = Path(tempfile.mkdtemp(prefix="vs-bench-soak-"))
    video = make_video(work / "clip.mp4", frames=250)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pace = ["-re"] if args.fps > 0 else []
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", *pace, "-stream_loop", "-1", "-i",
         str(video), "-c:v", "mpeg2video", "-q:v", "4", "-g", "12", "-f", "mpegts", "-listen",
         "1", f"http://127.0.0.1:{port}/live"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[int, float]] = []
    try:
        time.sleep(0.5)
        stream = visionsuite.run(args.task, f"http://127.0.0.1:{port}/live", model=args.model,
                                 runtime=args.runtime, results=work / "r.jsonl",
                                 save=(work / "out.mp4") if args.save else None,
                                 max_frames=args.frames, timeout=10.0)
        started = time.perf_counter()
        n = 0
        for _ in stream:
            n += 1
            if n % args.every == 0 or n == 1:
                samples.append((n, round(rss_mb(), 1)))
        wall = time.perf_counter() - started
        samples.append((n, round(rss_mb(), 1)))
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    base_at = max(1, int(args.frames * args.warmup))
    base = next(r for k, r in samples if k >= base_at)
    end = samples[-1][1]
    later = [r for k, r in samples if k >= base_at]
    out = {
        "model": args.model, "frames": n, "wall_s": round(wall, 1),
        "fps": round(n / wall, 1) if wall else None, "stopped_by": stream.stats["stopped_by"],
        "rss_mb": {"first": samples[0][1], "baseline": base, "end": end, "max": max(later)},
        "growth_pct": round(100.0 * (end - base) / base, 2),
        "max_growth_pct": round(100.0 * (max(later) - base) / base, 2),
        "samples": samples, "save": args.save, "load_average": load_average(),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}, indent=2))
    print(f"RSS growth after warm-up: {out['growth_pct']:+.2f}% "
          f"({base} -> {end} MB over {n - base_at} frames)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
