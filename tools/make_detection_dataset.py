#!/usr/bin/env python3
"""Synthetic detection data with exact boxes: still scenes (COCO JSON, optionally YOLO) and
moving-object clips with known tracks and known line crossings.

**Scenes.** Each scene is a textured background -- a crop of a real photo (the scikit-image
samples, fetched once into the visionsuite cache), or with ``--backgrounds procedural`` a
random mix of gradients, stripes and noise -- with clutter drawn first (irregular blobs
and line segments that belong to no class) and then 1 to ``--max-objects`` shapes of the
classes circle, square, triangle, star and cross. Sizes are log-uniform from 6 px to half
the image side, so small objects are common. Shapes are drawn in order, so a later one can
hide part of an earlier one: the placement is retried until every earlier shape keeps at
least :data:`MIN_VISIBLE` of its pixels, and **the box of an occluded shape is the tight box
of its visible pixels** (what a detector can see). Every box is computed from the drawn
pixel masks, so it is exact.

Layout (the detection readers' ``coco`` format; ``--yolo`` adds the YOLO layout beside)::

    OUT/annotations/instances_{train,val,test}.json
    OUT/images/{train,val,test}/000000.jpg
    OUT/yolo/data.yaml, OUT/yolo/images/<split>/, OUT/yolo/labels/<split>/   (--yolo)

Splits use independent random streams derived from ``--seed``; the same arguments give the
same files.

**Clips** (``--clip OUT.mp4``): ``--objects`` shapes move over a fixed textured background
with constant velocity (directions at least 20 degrees off the axes) plus a little jitter,
bouncing off the frame edges, crossing each
other (the later one in drawing order occludes the earlier). ``OUT.json`` holds per frame
the *full* box of every object (the MOT convention: the extent of the whole object, also
when partly hidden), its id and class, plus the visible fraction; and for ``--line
x1,y1,x2,y2`` the exact crossings of the box centres over that segment (frame, id,
direction). Directions follow the tracker's counters: ``in`` is a move to the side where
the cross product of (x2 - x1, y2 - y1) and (p - (x1, y1)) is positive -- for a line drawn
left to right, from above it to below it on screen; swapping the end points swaps in/out.

Usage:
    python tools/make_detection_dataset.py datasets/generated/shapes-det --train 800 \\
        --val 100 --test 200 --size 256
    python tools/make_detection_dataset.py --clip runs/moving.mp4 --frames 300 --objects 6 \\
        --line 0,120,320,120
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

CLASSES = ("circle", "square", "triangle", "star", "cross")
# (float) every shape keeps at least this fraction of its pixels visible
MIN_VISIBLE = 0.4
MIN_SIZE = 6
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "hubble_deep_field",
          "brick", "grass", "gravel")


# === Backgrounds and clutter ===
def load_photos(names=PHOTOS) -> list[np.ndarray]:
    """The background photos as RGB uint8 arrays (fetched once into the cache)."""
    from visionsuite import samples
    from visionsuite.data.images import read_image

    paths = samples.SKIMAGE.fetch([n for n in names if n in samples.SKIMAGE.members])
    return [read_image(p) for p in paths.values()]


def procedural_background(rng, h: int, w: int) -> np.ndarray:
    """A texture: a colour gradient plus stripes and noise at random scales."""
    import cv2

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
    t = (xx * np.cos(a := rng.uniform(0, np.pi)) + yy * np.sin(a)) / max(h, w)
    img = c0 + (c1 - c0) * t[..., None]
    period, phase = rng.uniform(6, 40), rng.uniform(0, 2 * np.pi)
    b = rng.uniform(0, np.pi)
    img += rng.uniform(5, 35) * np.sin((xx * np.cos(b) + yy * np.sin(b)) / period * 2 * np.pi
                                       + phase)[..., None]
    noise = rng.normal(0, 1, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    img += rng.uniform(5, 25) * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_background(rng, photos, h: int, w: int) -> np.ndarray:
    import cv2

    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ch, cw = int(min(ph, pw * h / w) * scale), int(min(pw, ph * w / h) * scale)
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = photo[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA))


def draw_clutter(rng, image: np.ndarray, count: int) -> None:
    """Blobs and line segments of no class, in place (drawn under the objects)."""
    import cv2

    h, w = image.shape[:2]
    for _ in range(count):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:  # irregular blob: a jittered 7-11-gon
            n = int(rng.integers(7, 12))
            r = rng.uniform(3, 0.12 * min(h, w)) * rng.uniform(0.6, 1.0, n)
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            c = rng.uniform([0, 0], [w, h])
            pts = np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], 1)
            cv2.fillPoly(image, [pts.round().astype(np.int32)], color)
        else:
            p = rng.uniform([0, 0, 0, 0], [w, h, w, h]).round().astype(int)
            cv2.line(image, (p[0], p[1]), (p[2], p[3]), color, int(rng.integers(1, 4)))


# === Shapes ===
def shape_mask(kind: str, cx: float, cy: float, size: float, angle: float, h: int, w: int
               ) -> np.ndarray:
    """Boolean mask of one shape of class ``kind`` with outer diameter ``size``."""
    import cv2

    layer = np.zeros((h, w), np.uint8)
    r = size / 2
    if kind == "circle":
        cv2.circle(layer, (int(round(cx)), int(round(cy))), max(1, int(round(r))), 1, -1)
        return layer.astype(bool)
    if kind == "square":
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * r / np.sqrt(2)
    elif kind == "triangle":
        a = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) - np.pi / 2
        corners = np.stack([np.cos(a), np.sin(a)], 1) * r
    elif kind == "star":
        a = np.arange(10) * np.pi / 5 - np.pi / 2
        radius = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        corners = np.stack([np.cos(a) * radius, np.sin(a) * radius], 1)
    elif kind == "cross":
        t = 0.33 * r
        corners = np.array([[-t, -r], [t, -r], [t, -t], [r, -t], [r, t], [t, t], [t, r],
                            [-t, r], [-t, t], [-r, t], [-r, -t], [-t, -t]])
    else:
        raise ValueError(f"unknown shape {kind!r}")
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = corners @ rot.T + [cx, cy]
    cv2.fillPoly(layer, [np.round(pts).astype(np.int32)], 1)
    return layer.astype(bool)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight xyxy box (pixel edges) of a boolean mask, or None when empty."""
    ys = np.nonzero(mask.any(axis=1))[0]
    xs = np.nonzero(mask.any(axis=0))[0]
    if not len(xs):
        return None
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float32)


def paint(rng, image: np.ndarray, mask: np.ndarray, color) -> None:
    """Fill ``mask`` with ``color`` plus mild shading and noise, in place."""
    h, w = image.shape[:2]
    shade = rng.normal(0, 8, (h, w, 1)) + np.linspace(-15, 15, w)[None, :, None]
    fill = np.clip(np.asarray(color, np.float32) + shade, 0, 255).astype(np.uint8)
    image[mask] = fill[mask]


def make_scene(rng, photos, h: int, w: int, *, max_objects: int = 8, clutter: int = 4,
               return_masks: bool = False):
    """One scene: ``(image RGB uint8, boxes (N, 4) xyxy float32, classes (N,) int32)``,
    plus the full and visible masks of each shape with ``return_masks``."""
    image = (photo_background(rng, photos, h, w) if photos
             else procedural_background(rng, h, w))
    draw_clutter(rng, image, int(rng.integers(0, clutter + 1)))
    masks, classes, colors = [], [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(len(CLASSES)))
        for _attempt in range(20):
            size = float(np.exp(rng.uniform(np.log(MIN_SIZE), np.log(0.5 * min(h, w)))))
            cx = rng.uniform(size * 0.3, w - size * 0.3)
            cy = rng.uniform(size * 0.3, h - size * 0.3)
            m = shape_mask(CLASSES[cls], cx, cy, size, rng.uniform(0, 2 * np.pi), h, w)
            if m.sum() < 12:
                continue
            # every earlier shape must keep MIN_VISIBLE of its pixels
            if all((v & ~m).sum() >= MIN_VISIBLE * full for v, full in
                   zip(visible_masks(masks), [x.sum() for x in masks])):
                break
        else:
            continue
        masks.append(m)
        classes.append(cls)
        colors.append(tuple(int(v) for v in rng.integers(0, 256, 3)))
    for m, color in zip(masks, colors):
        paint(rng, image, m, color)
    visible = visible_masks(masks)
    boxes = [mask_box(v) for v in visible]
    if not boxes:
        out = image, np.zeros((0, 4), np.float32), np.zeros((0,), np.int32)
    else:
        out = image, np.stack(boxes).astype(np.float32), np.asarray(classes, np.int32)
    return (*out, masks, visible) if return_masks else out


def visible_masks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """The visible part of each mask given the ones drawn after it."""
    out = []
    for k, m in enumerate(masks):
        v = m.copy()
        for later in masks[k + 1:]:
            v &= ~later
        out.append(v)
    return out


# === Dataset ===
def write_split(root: Path, split: str, count: int, h: int, w: int, seed: int, photos,
                max_objects: int) -> dict:
    import cv2

    folder = root / "images" / split
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    doc = {"info": {"description": "synthetic shapes (tools/make_detection_dataset.py)"},
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
           "images": [], "annotations": []}
    for i in range(count):
        image, boxes, classes = make_scene(rng, photos, h, w, max_objects=max_objects)
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        doc["images"].append({"id": i + 1, "file_name": name, "height": h, "width": w})
        for box, cls in zip(boxes.tolist(), classes.tolist()):
            bw, bh = box[2] - box[0], box[3] - box[1]
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1,
                                       "category_id": cls + 1, "bbox": [box[0], box[1], bw, bh],
                                       "area": bw * bh, "iscrowd": 0})
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return doc


def make_dataset(out: str | Path, *, train: int = 800, val: int = 100, test: int = 200,
                 size: int | tuple[int, int] = 256, seed: int = 0, max_objects: int = 8,
                 backgrounds: str = "photos", yolo: bool = False,
                 overwrite: bool = False) -> Path:
    """Write the scenes dataset to ``out`` (see the module docstring); returns ``out``."""
    out = Path(out)
    h, w = (size, size) if isinstance(size, int) else size
    if out.exists() and not overwrite:
        raise SystemExit(f"error: {out} already exists; pass --overwrite to replace it")
    if min(h, w) < 32 or train < 1 or val < 0 or test < 0 or max_objects < 1:
        raise SystemExit(f"error: need size >= 32, train >= 1, val/test >= 0, max_objects >= 1. "
                         f"Received: size={size}, train={train}, val={val}, test={test}, "
                         f"max_objects={max_objects}")
    photos = load_photos() if backgrounds == "photos" else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for k, (split, count) in enumerate((("train", train), ("val", val), ("test", test))):
            if count:
                write_split(tmp, split, count, h, w, seed * 1000 + k, photos, max_objects)
        if yolo:
            from visionsuite_tasks.detection.convert import convert_dataset

            convert_dataset(tmp, tmp / "yolo", "yolo", source_format="coco")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


# === Moving clips ===
def make_tracks(*, frames: int = 200, size: tuple[int, int] = (240, 320), objects: int = 6,
                seed: int = 0, speed: tuple[float, float] = (1.5, 4.0),
                obj_size: tuple[float, float] = (18, 40)) -> dict:
    """Ground-truth trajectories: ``{"size": (h, w), "classes", "objects": [{"id", "class",
    "size", "angle", "color"}], "frames": [[{"id", "box"}], ...]}`` -- full boxes, objects
    bouncing inside the frame with constant speed plus jitter."""
    rng = np.random.default_rng(seed)
    h, w = size
    objs, state = [], []
    for k in range(objects):
        s = float(rng.uniform(*obj_size))
        pos = rng.uniform([s, s], [w - s, h - s])
        # directions at least 20 degrees away from the axes: crossings of horizontal and
        # vertical lines are clean (no long runs along the line)
        ang = rng.uniform(np.radians(20), np.radians(70)) + rng.integers(4) * np.pi / 2
        vel = rng.uniform(*speed) * np.array([np.cos(ang), np.sin(ang)])
        objs.append({"id": k + 1, "class": int(rng.integers(len(CLASSES))), "size": s,
                     "angle": float(rng.uniform(0, 2 * np.pi)),
                     "color": [int(v) for v in rng.integers(0, 256, 3)]})
        state.append([pos, vel])
    out = []
    for _ in range(frames):
        row = []
        for obj, st in zip(objs, state):
            pos, vel = st
            half = obj["size"] / 2
            row.append({"id": obj["id"], "box": [float(pos[0] - half), float(pos[1] - half),
                                                 float(pos[0] + half), float(pos[1] + half)]})
            pos = pos + vel + rng.normal(0, 0.15, 2)
            for axis, limit in ((0, w), (1, h)):
                if pos[axis] < half or pos[axis] > limit - half:
                    vel[axis] = -vel[axis]
                    pos[axis] = np.clip(pos[axis], half, limit - half)
            st[0], st[1] = pos, vel
        out.append(row)
    return {"size": [h, w], "classes": list(CLASSES), "objects": objs, "frames": out}


def side_of(line, points) -> np.ndarray:
    """Cross product of the line direction with (point - start): > 0 on the ``in`` side (for
    a line drawn left to right: below it, image y pointing down), < 0 on the other."""
    x1, y1, x2, y2 = line
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return (x2 - x1) * (p[:, 1] - y1) - (y2 - y1) * (p[:, 0] - x1)


def segment_crossed(line, p, q) -> bool:
    """Whether the segment p -> q crosses the line *segment* (x1, y1)-(x2, y2)."""
    x1, y1, x2, y2 = line
    a, b = side_of(line, [p, q])
    c, d = side_of((p[0], p[1], q[0], q[1]), [(x1, y1), (x2, y2)])
    return a * b < 0 and c * d < 0


def line_crossings(tracks: dict, line) -> list[dict]:
    """Exact crossings of the box centres over ``line``: ``[{"frame", "id", "direction"}]``
    (``frame``: the first frame on the new side; ``in``: to the positive side)."""
    events = []
    prev = {}
    for f, row in enumerate(tracks["frames"]):
        for obj in row:
            b = obj["box"]
            c = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
            if obj["id"] in prev and segment_crossed(line, prev[obj["id"]], c):
                before = side_of(line, [prev[obj["id"]]])[0]
                events.append({"frame": f, "id": obj["id"],
                               "direction": "in" if before < 0 else "out"})
            prev[obj["id"]] = c
    return events


def render_clip_frames(tracks: dict, seed: int = 0):
    """Yield ``(frame RGB, visible fractions by id)`` for each frame of ``tracks``."""
    rng = np.random.default_rng(seed + 7)
    h, w = tracks["size"]
    background = procedural_background(rng, h, w)
    draw_clutter(rng, background, 5)
    by_id = {o["id"]: o for o in tracks["objects"]}
    for row in tracks["frames"]:
        image = background.copy()
        masks = []
        for obj in row:
            o = by_id[obj["id"]]
            b = obj["box"]
            m = shape_mask(CLASSES[o["class"]], (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, o["size"],
                           o["angle"], h, w)
            masks.append(m)
            image[m] = o["color"]
        vis = visible_masks(masks)
        yield image, {obj["id"]: float(v.sum() / max(1, m.sum()))
                      for obj, v, m in zip(row, vis, masks)}


def make_clip(path: str | Path, *, frames: int = 200, size=(240, 320), objects: int = 6,
              seed: int = 0, line=None, fps: float = 25.0) -> dict:
    """Write the clip (MJPG ``.avi`` or mp4v ``.mp4``) and ``<path>.json`` with the tracks,
    visible fractions and the crossings of ``line``; returns the ground truth."""
    import cv2

    path = Path(path)
    tracks = make_tracks(frames=frames, size=tuple(size), objects=objects, seed=seed)
    h, w = tracks["size"]
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"error: cannot write {path} with {fourcc}")
    for k, (image, visible) in enumerate(render_clip_frames(tracks, seed)):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        for obj in tracks["frames"][k]:
            obj["visible"] = round(visible[obj["id"]], 4)
    writer.release()
    if line is not None:
        tracks["line"] = [float(v) for v in line]
        tracks["crossings"] = line_crossings(tracks, line)
    Path(str(path) + ".json").write_text(json.dumps(tracks))
    return tracks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", help="output folder of the scenes dataset")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--size", type=int, nargs="+", default=[256],
                        help="side, or height width")
    parser.add_argument("--max-objects", type=int, default=8)
    parser.add_argument("--backgrounds", choices=("photos", "procedural"), default="photos")
    parser.add_argument("--yolo", action="store_true", help="also write the YOLO layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--clip", help="write a moving-objects clip here instead")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--line", help="x1,y1,x2,y2 of a counting line (clips)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    size = args.size[0] if len(args.size) == 1 else tuple(args.size[:2])
    if args.clip:
        line = [float(v) for v in args.line.split(",")] if args.line else None
        hw = (size, size) if isinstance(size, int) else size
        gt = make_clip(args.clip, frames=args.frames, size=hw, objects=args.objects,
                       seed=args.seed, line=line)
        extra = f", {len(gt['crossings'])} line crossings" if line else ""
        print(f"wrote {args.clip} ({args.frames} frames, {args.objects} objects{extra}) and "
              f"{args.clip}.json in {time.perf_counter() - start:.1f} s")
        return 0
    if not args.out:
        parser.error("give an output folder, or --clip")
    make_dataset(args.out, train=args.train, val=args.val, test=args.test, size=size,
                 seed=args.seed, max_objects=args.max_objects, backgrounds=args.backgrounds,
                 yolo=args.yolo, overwrite=args.overwrite)
    print(f"wrote {args.train}/{args.val}/{args.test} train/val/test scenes to {args.out} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
