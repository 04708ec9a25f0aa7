#!/usr/bin/env python3
"""Generate synthetic activity clips with exact labels: an object that moves in a known way.

Classes (what the one "actor" object does over the clip):

    move_left, move_right   crosses the frame horizontally (random speed, row, start)
    circle                  goes round a circle (random centre, radius, speed, direction)
    still                   stays where it is (sub-pixel jitter only)
    grow                    approaches: its size grows 1.8-2.6x at a fixed point
    blink                   appears and disappears (random period 2-5 frames and phase)

Every clip has a random smooth-noise background, 1-3 static distractor shapes, a random
actor shape (disc or square), colour, size and start, and fresh pixel noise in every frame;
speeds and phases vary, so only the motion tells the classes apart. The actor's path for
"move_*" and "circle" stays inside the frame.

Layout (the activity ``folders`` format, and a CSV manifest per split)::

    OUT/train/<class>/000000.mp4 ...   OUT/val/<class>/...   OUT/test/<class>/...
    OUT/train.csv                      video,label (paths relative to OUT)
    OUT/info.json                      the generator's arguments

Videos are written with OpenCV as mp4v (``.mp4``, default) or MJPG (``.avi``). Each clip's
random stream is derived from (seed, split, class, index): the same arguments give the same
clips, and the splits never share a stream. Written into a temporary folder, moved into
place at the end.

Usage:
    python tools/make_motion_clips.py /tmp/motion --train 60 --val 10 --test 20 --size 64 --frames 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("move_left", "move_right", "circle", "still", "grow", "blink")
SPLITS = ("train", "val", "test")
CODECS = {"mp4v": ".mp4", "MJPG": ".avi"}


def _background(rng, size):
    import cv2

    coarse = rng.uniform(40, 200, (4, 4, 3)).astype(np.float32)
    bg = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(bg, 0, 255)


def _draw(img, shape, center, radius, color):
    import cv2

    cx, cy = (int(round(v * 16)) for v in center)  # 4 fractional bits: sub-pixel motion
    r = max(1, int(round(radius * 16)))
    if shape == "disc":
        cv2.circle(img, (cx, cy), r, color, -1, cv2.LINE_AA, shift=4)
    else:
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1, cv2.LINE_AA, shift=4)


def _trajectory(kind, rng, frames, size, radius):
    """Per frame: (centre x, centre y, radius, visible)."""
    t = np.arange(frames, dtype=np.float64)
    margin = radius + 1
    if kind in ("move_left", "move_right"):
        speed = rng.uniform(0.35, 0.75) * (size - 2 * margin) / frames
        travel = speed * (frames - 1)
        x0 = rng.uniform(margin, size - margin - travel)
        x = x0 + speed * t
        if kind == "move_left":
            x = size - x
        y = np.full(frames, rng.uniform(margin, size - margin))
        r = np.full(frames, radius)
        visible = np.ones(frames, bool)
    elif kind == "circle":
        big = rng.uniform(0.18, 0.3) * size
        cx = rng.uniform(margin + big, size - margin - big)
        cy = rng.uniform(margin + big, size - margin - big)
        omega = rng.uniform(0.6, 1.2) * 2 * np.pi / frames * rng.choice([-1, 1])
        phase = rng.uniform(0, 2 * np.pi)
        x, y = cx + big * np.cos(phase + omega * t), cy + big * np.sin(phase + omega * t)
        r = np.full(frames, radius)
        visible = np.ones(frames, bool)
    elif kind == "still":
        x = np.full(frames, rng.uniform(margin, size - margin)) + rng.normal(0, 0.15, frames)
        y = np.full(frames, rng.uniform(margin, size - margin)) + rng.normal(0, 0.15, frames)
        r = np.full(frames, radius)
        visible = np.ones(frames, bool)
    elif kind == "grow":
        final = radius * rng.uniform(1.8, 2.6)
        x = np.full(frames, rng.uniform(final + 1, size - final - 1))
        y = np.full(frames, rng.uniform(final + 1, size - final - 1))
        r = radius + (final - radius) * t / max(frames - 1, 1)
        visible = np.ones(frames, bool)
    elif kind == "blink":
        x = np.full(frames, rng.uniform(margin, size - margin))
        y = np.full(frames, rng.uniform(margin, size - margin))
        r = np.full(frames, radius)
        period = int(rng.integers(2, 6))
        phase = int(rng.integers(0, 2 * period))
        visible = ((t.astype(int) + phase) // period) % 2 == 0
    else:
        raise ValueError(f"unknown motion class {kind!r}. Received: {kind!r}")
    return x, y, r, visible


def render_clip(kind: str, rng: np.random.Generator, frames: int = 16, size: int = 64,
                noise: float = 6.0) -> np.ndarray:
    """One clip of class ``kind`` as RGB uint8 ``(frames, size, size, 3)``."""
    bg = _background(rng, size)
    for _ in range(int(rng.integers(1, 4))):  # static distractors
        _draw(bg, rng.choice(["disc", "square"]), rng.uniform(0, size, 2),
              rng.uniform(0.04, 0.1) * size, tuple(float(c) for c in rng.uniform(0, 255, 3)))
    shape = rng.choice(["disc", "square"])
    color = tuple(float(c) for c in rng.uniform(0, 255, 3))
    if rng.random() < 0.5:  # keep the actor visible against the background
        color = tuple(float(255.0 - c) for c in np.mean(bg, axis=(0, 1)))
    radius = rng.uniform(0.07, 0.12) * size
    x, y, r, visible = _trajectory(kind, rng, frames, size, radius)
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        img = bg.copy()
        if visible[i]:
            _draw(img, shape, (x[i], y[i]), r[i], color)
        img += rng.normal(0, noise, img.shape).astype(np.float32)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_video(path: Path, frames_rgb: np.ndarray, fps: float = 12.0, codec: str = "mp4v") -> Path:
    """Write RGB frames as a video with OpenCV (``mp4v`` or ``MJPG``)."""
    import cv2

    h, w = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec} to {path}")
    try:
        for f in frames_rgb:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def make_dataset(out: Path, counts: dict[str, int], *, size: int = 64, frames: int = 16,
                 fps: float = 12.0, codec: str = "mp4v", seed: int = 0, noise: float = 6.0,
                 classes=CLASSES, overwrite: bool = False) -> Path:
    """Write the dataset (see the module docstring); returns ``out``."""
    out = Path(out)
    if codec not in CODECS:
        raise SystemExit(f"error: codec must be one of {sorted(CODECS)}. Received: {codec!r}")
    nonempty = (out.is_dir() and any(out.iterdir())) or out.is_file()
    if nonempty and not overwrite:
        raise SystemExit(f"error: {out} exists and is not empty; pass --overwrite. "
                         f"Received: out={out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for s, split in enumerate(SPLITS):
            n = int(counts.get(split, 0))
            if n <= 0:
                continue
            rows = ["video,label"]
            for c, name in enumerate(classes):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in range(n):
                    rng = np.random.default_rng([seed, s, c, i])
                    clip = render_clip(name, rng, frames, size, noise)
                    path = write_video(folder / f"{i:06d}{CODECS[codec]}", clip, fps, codec)
                    rows.append(f"{path.relative_to(tmp).as_posix()},{name}")
            (tmp / f"{split}.csv").write_text("\n".join(rows) + "\n")
        info = dict(classes=list(classes), counts=counts, size=size, frames=frames, fps=fps,
                    codec=codec, seed=seed, noise=noise)
        (tmp / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Output folder.")
    parser.add_argument("--train", type=int, default=60, help="Clips per class in train/.")
    parser.add_argument("--val", type=int, default=10, help="Clips per class in val/.")
    parser.add_argument("--test", type=int, default=20, help="Clips per class in test/.")
    parser.add_argument("--size", type=int, default=64, help="Frame side in pixels.")
    parser.add_argument("--frames", type=int, default=16, help="Frames per clip.")
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--codec", choices=sorted(CODECS), default="mp4v")
    parser.add_argument("--noise", type=float, default=6.0, help="Pixel noise std per frame.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.size < 24 or args.frames < 4:
        parser.error(f"--size must be >= 24 and --frames >= 4. Received: size={args.size}, "
                     f"frames={args.frames}")
    start = time.perf_counter()
    counts = {"train": args.train, "val": args.val, "test": args.test}
    out = make_dataset(args.out, counts, size=args.size, frames=args.frames, fps=args.fps,
                       codec=args.codec, seed=args.seed, noise=args.noise,
                       overwrite=args.overwrite)
    total = sum(counts.values()) * len(CLASSES)
    print(f"{total} clips ({len(CLASSES)} classes) in {out} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
