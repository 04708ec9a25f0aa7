"""Write a small class-per-folder image set (PNG) from an IDX dataset such as Fashion-MNIST.

Used for the transfer-learning comparison in the README (few labelled images per class):

    .venv/bin/python tools/make_image_subset.py --per-class 50 --test-per-class 100 \
        --out datasets/generated/fmnist-small

Writes <out>/train/<class>/*.png and <out>/test/<class>/*.png (the test images come from the
dataset's own test split). The output is generated data: it is git-ignored.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import cv2
import numpy as np

from visionsuite import samples
from visionsuite_tasks.classification.readers import read_idx


def write_split(dataset, out: Path, per_class: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    labels = np.array([s.target for s in dataset.samples])
    written = 0
    for index, name in enumerate(dataset.classes):
        folder = out / re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        folder.mkdir(parents=True, exist_ok=True)
        picks = rng.permutation(np.flatnonzero(labels == index))[:per_class]
        for i in picks:
            cv2.imwrite(str(folder / f"{i:05d}.png"), dataset.samples[i].image)
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="IDX folder (default: Fashion-MNIST)")
    parser.add_argument("--per-class", type=int, default=50, help="training images per class")
    parser.add_argument("--test-per-class", type=int, default=100, help="test images per class")
    parser.add_argument("--out", default="datasets/generated/fmnist-small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.data or samples.fashion_mnist_dir()
    out = Path(args.out)
    n_train = write_split(read_idx(data, split="train"), out / "train", args.per_class, args.seed)
    n_test = write_split(read_idx(data, split="test"), out / "test", args.test_per_class, args.seed)
    print(f"{out}: {n_train} training and {n_test} test images")


if __name__ == "__main__":
    main()
