#!/usr/bin/env python3
"""Generate the synthetic "shapes" segmentation dataset: shapes with exact masks on real photos.

Each scene is a random crop of a real photo (the scikit-image sample photos, fetched from the
PyPI wheel into the visionsuite cache; see NOTICE) with 1-4 filled shapes drawn over it --
circles, rectangles and triangles of random size, rotation and colour, sometimes
overlapping. The mask is drawn with the same polygons (no anti-aliasing), so it is exact.
Shape colours are random, so a model must learn the shapes, not their colours.

Layout (the segmentation task's ``folders`` format)::

    OUT/classes.yaml                    background, circle, rectangle, triangle
    OUT/train/images/000000.jpg  OUT/train/masks/000000.png   (index PNG)
    OUT/test/images/...          OUT/test/masks/...           (held-out scenes)

The two splits use different random streams, and the held-out scenes use their own photo
crops. The output is written to a temporary folder and moved into place at the end.

Usage:
    python tools/make_shapes_dataset.py datasets/shapes --train 600 --test 150 --size 128
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("background", "circle", "rectangle", "triangle")
COLORS = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "hubble_deep_field",
          "brick", "grass", "gravel")


def load_backgrounds(names=PHOTOS) -> list[np.ndarray]:
    """The background photos as RGB uint8 arrays (fetched once into the cache)."""
    from visionsuite import samples
    from visionsuite.data.images import read_image

    paths = samples.SKIMAGE.fetch([n for n in names if n in samples.SKIMAGE.members])
    return [read_image(p) for p in paths.values()]


def _background(rng, photos, size):
    import cv2

    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = photo[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


def _polygon(rng, kind, size):
    """Vertices (int32, (N, 2)) of one shape of class ``kind``, or a circle's (center, r)."""
    r = rng.uniform(0.09, 0.22) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if kind == "circle":
        return (int(round(cx)), int(round(cy))), int(round(r))
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "rectangle":
        aspect = rng.uniform(0.5, 1.0)
        corners = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * r
    else:  # triangle: an irregular one, vertices spread around the circle
        angles = np.array([0.0, 2.1, 4.2]) + rng.uniform(-0.35, 0.35, 3)
        corners = np.stack([np.cos(angles), np.sin(angles)], axis=1) * r * 1.2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.round(corners @ rot.T + [cx, cy]).astype(np.int32)


def make_scene(rng, photos, size):
    """One ``(image RGB uint8, mask uint8)`` pair."""
    import cv2

    image = _background(rng, photos, size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(1, len(CLASSES)))
        shape = _polygon(rng, CLASSES[cls], size)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        layer = np.zeros((size, size), np.uint8)
        if CLASSES[cls] == "circle":
            cv2.circle(layer, shape[0], shape[1], 1, thickness=-1, lineType=cv2.LINE_8)
        else:
            cv2.fillPoly(layer, [shape], 1, lineType=cv2.LINE_8)
        inside = layer.astype(bool)
        # A flat colour with mild noise and shading: texture without a colour shortcut.
        shade = rng.normal(0, 12, (size, size, 1)) + np.linspace(-20, 20, size)[None, :, None]
        fill = np.clip(np.array(color, np.float32) + shade, 0, 255).astype(np.uint8)
        image[inside] = fill[inside]
        mask[inside] = cls
    return image, mask


def write_split(root: Path, name: str, count: int, size: int, seed: int, photos) -> None:
    import cv2

    images, masks = root / name / "images", root / name / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, mask = make_scene(rng, photos, size)
        cv2.imwrite(str(images / f"{i:06d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(masks / f"{i:06d}.png"), mask)


def write_class_map(path: Path) -> None:
    lines = ["# Class map of the synthetic shapes dataset (tools/make_shapes_dataset.py)",
             "ignore_index: 255", "classes:"]
    for k, (name, color) in enumerate(zip(CLASSES, COLORS)):
        lines.append(f"  - {{id: {k}, name: {name}, color: [{color[0]}, {color[1]}, {color[2]}]}}")
    path.write_text("\n".join(lines) + "\n")


def make_dataset(out: str | Path, *, train: int = 600, test: int = 150, size: int = 128,
                 seed: int = 0, overwrite: bool = False) -> Path:
    """Write the dataset to ``out`` (see the module docstring); returns ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise SystemExit(f"error: {out} already exists; pass --overwrite to replace it")
    if size < 32 or train < 1 or test < 0:
        raise SystemExit(f"error: need size >= 32, train >= 1, test >= 0. Received: "
                         f"size={size}, train={train}, test={test}")
    photos = load_backgrounds()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_split(tmp, "train", train, size, seed, photos)
        if test:
            write_split(tmp, "test", test, size, seed + 1_000_003, photos)
        write_class_map(tmp / "classes.yaml")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--train", type=int, default=600, help="training scenes")
    parser.add_argument("--test", type=int, default=150, help="held-out scenes")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    make_dataset(args.out, train=args.train, test=args.test, size=args.size, seed=args.seed,
                 overwrite=args.overwrite)
    print(f"wrote {args.train} train + {args.test} test scenes of {args.size}px to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
