"""A tiny synthetic detection dataset, written by the library itself (no downloads): for the
task's conformance check and for smoke tests. The full generator with clutter, occlusion and
moving clips is ``tools/make_detection_dataset.py``.

    >>> root = write_tiny_dataset("/tmp/tiny-det")      # COCO layout, train + val
    >>> read_dataset(root, split="train")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_CLASSES = ("square", "disc")


def write_tiny_dataset(path: str | Path, *, images: int = 8, size: tuple[int, int] = (64, 96),
                       seed: int = 0, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Write ``images`` scenes per split (noisy grey background, 0-3 non-overlapping filled
    squares and discs with exact boxes; the first image of each split has none) in the COCO
    layout the detection readers take (``annotations/instances_<split>.json`` +
    ``images/<split>/``). Returns ``path``."""
    import cv2

    root = Path(path)
    h, w = size
    for k, split in enumerate(splits):
        rng = np.random.default_rng(seed * 100 + k)
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"categories": [{"id": i + 1, "name": n} for i, n in enumerate(TINY_CLASSES)],
               "images": [], "annotations": []}
        for i in range(images):
            image = np.clip(rng.normal(110, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            taken = np.zeros((h, w), bool)
            count = 0 if i == 0 else int(rng.integers(1, 4))
            for _ in range(count):
                side = int(rng.integers(max(6, min(h, w) // 8), max(7, min(h, w) // 2)))
                x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
                if taken[y:y + side, x:x + side].any():
                    continue
                taken[y:y + side, x:x + side] = True
                cls = int(rng.integers(len(TINY_CLASSES)))
                color = tuple(int(v) for v in rng.integers(0, 256, 3))
                if cls == 0:
                    cv2.rectangle(image, (x, y), (x + side - 1, y + side - 1), color, -1)
                else:  # a disc filling the square exactly: its box is the square
                    r = side / 2
                    yy, xx = np.mgrid[0:side, 0:side]
                    disc = (xx + 0.5 - r) ** 2 + (yy + 0.5 - r) ** 2 <= r * r
                    image[y:y + side, x:x + side][disc] = color
                doc["annotations"].append({
                    "id": len(doc["annotations"]) + 1, "image_id": i + 1, "category_id": cls + 1,
                    "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0})
            name = f"{i:04d}.png"
            cv2.imwrite(str(folder / name), image)
            doc["images"].append({"id": i + 1, "file_name": name, "height": h, "width": w})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root
