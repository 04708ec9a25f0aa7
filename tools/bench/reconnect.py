"""Reconnect gap: time from an HTTP stream's server coming back to the first frame after it.

An ffmpeg HTTP server (MPEG-TS, ``-listen 1``, loopback only) streams a test pattern; a
``URLSource`` reads it; the server is killed, stays down for ``--outage`` seconds and is
started again on the same port. The gap is measured from the moment the new server is started
to the first frame the source delivers after the outage. Also printed: the connection
attempts the source made while the server was down (it must not hammer a dead server).

Usage:
    python tools/bench/reconnect.py --outage 5 --rounds 3 [--timeout 10]
        [--reconnect-delay-max 1.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import subprocess
import threading
import time

import common  # noqa: F401  (environment: quiet OpenCV / FFmpeg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    """An ffmpeg test-pattern server on 127.0.0.1:port (one client, 25 fps, real time)."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
         "testsrc=size=160x120:rate=25", "-c:v", "mpeg2video", "-g", "5", "-q:v", "5",
         "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/live"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_round(outage: float, timeout: float, reconnect: int, delay_max: float) -> dict:
    from visionsuite.streams.sources import URLSource

    port = free_port()
    server = serve(port)
    time.sleep(0.5)
    source = URLSource(f"http://127.0.0.1:{port}/live", timeout=timeout, reconnect=reconnect,
                       reconnect_delay_max=delay_max)
    attempts = []
    connect = source._connect

    def counted(**kw):
        attempts.append(time.monotonic())
        return connect(**kw)

    source._connect = counted
    source.open()
    stop = threading.Event()
    frames = []

    def read():
        for frame in source.frames(stop):
            frames.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)
        server.kill()
        server.wait()
        down = time.monotonic()
        time.sleep(outage)
        before = len(frames)
        server = serve(port)
        up = time.monotonic()
        deadline = up + 30
        while len(frames) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        first = frames[before] if len(frames) > before else None
        while_down = sum(1 for t in attempts if down <= t < up)
    finally:
        stop.set()
        server.kill()
        server.wait()
        reader.join(5)
        source.close()
    return {"gap_s": round(first - up, 3) if first else None,
            "attempts_while_down": while_down,
            "outage_s": outage}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="the source's --timeout")
    parser.add_argument("--reconnect", type=int, default=12)
    parser.add_argument("--reconnect-delay-max", type=float, default=1.5)
    parser.add_argument("--json", help="also save the result here")
    parser.add_argument("--verbose", action="store_true", help="show the source's warnings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)
    rounds = [one_round(args.outage, args.timeout, args.reconnect, args.reconnect_delay_max)
              for _ in range(args.rounds)]
    gaps = [r["gap_s"] for r in rounds if r["gap_s"] is not None]
    out = {"outage_s": args.outage, "timeout_s": args.timeout,
           "reconnect_delay_max_s": args.reconnect_delay_max, "rounds": rounds,
           "gap_median_s": round(statistics.median(gaps), 3) if gaps else None,
           "gap_max_s": max(gaps) if gaps else None, "load_average": common.load_average()}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
