"""Writers of the three detection formats, and conversion between them.

    >>> from visionsuite_tasks.detection.convert import convert_dataset
    >>> report = convert_dataset("datasets/shapes-det", "runs/shapes-yolo", "yolo")
    >>> print(report.summary())

Every split of the source (``train``, ``val``, ``test``, or the whole dataset when it has
none) is read with :func:`~visionsuite_tasks.detection.readers.read_dataset` -- boxes checked,
bad ones skipped and counted -- and written in the layout its reader expects (see
:mod:`visionsuite_tasks.detection.readers`). The class list is the union over splits, in
order of first appearance, and is written explicitly (COCO categories, YOLO ``names``, VOC
``labels.txt``), so that a class without boxes keeps its index. Images are copied, or
symlinked with ``images="link"``; two source images with the same file name get distinct names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from visionsuite.errors import DataError, UsageError, did_you_mean
from visionsuite.task import Dataset
from visionsuite_tasks.detection.boxes import convert_boxes
from visionsuite_tasks.detection.readers import READERS, detect_format, list_splits, read_dataset

IMAGE_MODES = ("copy", "link")


def _num(value: float) -> str:
    """A coordinate for XML/text: integers without decimals, others rounded to 1/100 px."""
    v = round(float(value), 2)
    return str(int(v)) if v == int(v) else f"{v:.2f}".rstrip("0")


def _place_images(dataset: Dataset, folder: Path, images: str) -> list[Path]:
    """Copy or link every image of ``dataset`` into ``folder``; returns the new paths."""
    if images not in IMAGE_MODES:
        raise UsageError(f"images must be one of {', '.join(IMAGE_MODES)}. "
                         f"Received: images={images!r}")
    folder.mkdir(parents=True, exist_ok=True)
    used, out = set(), []
    for k, sample in enumerate(dataset.samples):
        src = Path(sample.image)
        name = src.name
        if name in used:
            name = f"{k:06d}_{src.name}"
        used.add(name)
        dest = folder / name
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if images == "link":
            dest.symlink_to(src.resolve())
        else:
            shutil.copyfile(src, dest)
        out.append(dest)
    return out


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_coco(dataset: Dataset, root: str | Path, split: str | None = None, *,
               images: str = "copy") -> Path:
    """Write ``dataset`` as ``root/annotations/instances_<split>.json`` with its images in
    ``root/images/<split>/`` (``default`` when ``split`` is None). Returns the JSON path."""
    root, split = Path(root), split or "default"
    paths = _place_images(dataset, root / "images" / split, images)
    doc = {"info": {"description": "written by visionsuite"}, "licenses": [],
           "categories": [{"id": i + 1, "name": n, "supercategory": ""}
                          for i, n in enumerate(dataset.classes)],
           "images": [], "annotations": []}
    for k, (sample, path) in enumerate(zip(dataset.samples, paths)):
        h, w = sample.target["size"]
        doc["images"].append({"id": k + 1, "file_name": path.name, "height": int(h),
                              "width": int(w)})
        xywh = convert_boxes(sample.target["boxes"], "xyxy", "xywh").astype(np.float64)
        for box, cls in zip(xywh, sample.target["classes"]):
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": k + 1,
                "category_id": int(cls) + 1, "bbox": [round(float(v), 3) for v in box],
                "area": round(float(box[2] * box[3]), 3), "iscrowd": 0})
    out = root / "annotations" / f"instances_{split}.json"
    _write_text(out, json.dumps(doc))
    return out


def write_yolo(dataset: Dataset, root: str | Path, split: str | None = None, *,
               images: str = "copy") -> Path:
    """Write ``dataset`` as ``root/images/<split>/`` + ``root/labels/<split>/*.txt`` and add
    the split to ``root/data.yaml`` (``train`` when ``split`` is None). Returns the YAML."""
    import yaml

    root, split = Path(root), split or "train"
    paths = _place_images(dataset, root / "images" / split, images)
    for sample, path in zip(dataset.samples, paths):
        h, w = sample.target["size"]
        yolo = convert_boxes(sample.target["boxes"], "xyxy", "yolo", image_size=(h, w))
        lines = [f"{int(c)} " + " ".join(f"{v:.6f}" for v in box)
                 for box, c in zip(yolo, sample.target["classes"])]
        _write_text(root / "labels" / split / f"{path.stem}.txt",
                    "\n".join(lines) + ("\n" if lines else ""))
    yaml_path = root / "data.yaml"
    data = yaml.safe_load(yaml_path.read_text()) if yaml_path.is_file() else {}
    if data.get("names") and list(data["names"]) != list(dataset.classes):
        raise DataError(f"{yaml_path} already names other classes. Received: "
                        f"{dataset.classes}")
    data.update({"path": ".", split: f"images/{split}", "names": list(dataset.classes)})
    _write_text(yaml_path, yaml.safe_dump(data, sort_keys=False))
    return yaml_path


def _voc_xml(image: Path, size, boxes, classes, names) -> str:
    h, w = size
    objects = "".join(
        f"  <object>\n    <name>{escape(names[int(c)])}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox><xmin>{_num(b[0] + 1)}</xmin><ymin>{_num(b[1] + 1)}</ymin>"
        f"<xmax>{_num(b[2])}</xmax><ymax>{_num(b[3])}</ymax></bndbox>\n  </object>\n"
        for b, c in zip(boxes, classes))
    return (f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(image.name)}"
            f"</filename>\n  <size><width>{int(w)}</width><height>{int(h)}</height>"
            f"<depth>3</depth></size>\n{objects}</annotation>\n")


def write_voc(dataset: Dataset, root: str | Path, split: str | None = None, *,
              images: str = "copy") -> Path:
    """Write ``dataset`` as ``root/Annotations/*.xml`` + ``root/JPEGImages/`` +
    ``root/labels.txt``, and ``root/ImageSets/Main/<split>.txt`` when ``split`` is given.
    Returns ``root``."""
    root = Path(root)
    labels = root / "labels.txt"
    if labels.is_file() and labels.read_text().split() != list(dataset.classes):
        raise DataError(f"{labels} already names other classes. Received: {dataset.classes}")
    # one image folder for every split (VOC layout): distinct names across splits
    existing = {p.name for p in (root / "JPEGImages").glob("*")} if (root / "JPEGImages"
                                                                     ).is_dir() else set()
    staged = Dataset(dataset.classes, list(dataset.samples))
    paths = _place_images(staged, root / ".staging", images)
    final = []
    for path in paths:
        name = path.name if path.name not in existing else f"{split or 'x'}_{path.name}"
        existing.add(name)
        dest = root / "JPEGImages" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        final.append(dest)
    shutil.rmtree(root / ".staging", ignore_errors=True)
    for sample, path in zip(dataset.samples, final):
        t = sample.target
        _write_text(root / "Annotations" / f"{path.stem}.xml",
                    _voc_xml(path, t["size"], t["boxes"], t["classes"], dataset.classes))
    _write_text(labels, "\n".join(dataset.classes) + "\n")
    if split is not None:
        _write_text(root / "ImageSets" / "Main" / f"{split}.txt",
                    "\n".join(p.stem for p in final) + "\n")
    return root


WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}


def remap_classes(dataset: Dataset, classes: Sequence[str]) -> Dataset:
    """``dataset`` with class indices into ``classes`` (which must hold all its names)."""
    classes = list(classes)
    missing = [n for n in dataset.classes if n not in classes]
    if missing:
        raise DataError(f"classes {missing} are not in the target class list. "
                        f"Received: classes={classes}")
    table = np.array([classes.index(n) for n in dataset.classes], np.int32)
    samples = [dataclasses.replace(s, target={**s.target, "classes":
                                              table[s.target["classes"]].astype(np.int32)})
               for s in dataset.samples]
    return Dataset(classes, samples, list(dataset.skipped))


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert_dataset` wrote."""

    source_format: str
    target_format: str
    destination: Path
    classes: list[str]
    images: dict  # split -> images written
    boxes: dict  # split -> boxes written
    skipped: list  # (item, reason) from the readers

    def summary(self) -> str:
        splits = ", ".join(f"{s}: {self.images[s]} images / {self.boxes[s]} boxes"
                           for s in self.images)
        skip = f"; skipped {len(self.skipped)} item(s), first: {self.skipped[0][0]}: " \
               f"{self.skipped[0][1]}" if self.skipped else ""
        return (f"converted {self.source_format} -> {self.target_format} into "
                f"{self.destination} ({len(self.classes)} classes; {splits}){skip}")


def convert_dataset(source: str | Path, destination: str | Path, to: str, *,
                    source_format: str | None = None, images: str = "copy",
                    strict: bool = False) -> ConversionReport:
    """Convert the detection dataset at ``source`` into format ``to`` at ``destination``.

    Args:
        source: dataset root (or COCO JSON / YOLO YAML file).
        destination: output folder (created; files of the same names are replaced).
        to: ``coco``, ``yolo`` or ``voc``.
        source_format: the source's format (detected when None).
        images: ``copy`` the images, or ``link`` them (symlinks to the source files).
        strict: fail at the first bad box or image instead of skipping it.
    """
    if to not in WRITERS:
        raise UsageError(f"unknown target format.{did_you_mean(str(to), WRITERS)} "
                         f"Received: to={to!r}")
    if source_format is not None and source_format not in READERS:
        raise UsageError(f"unknown source format.{did_you_mean(source_format, READERS)} "
                         f"Received: source_format={source_format!r}")
    source_format = source_format or detect_format(source)
    destination = Path(destination)
    if Path(source).resolve() == destination.resolve():
        raise UsageError(f"destination must differ from the source. Received: {destination}")
    parts = {s: read_dataset(source, split=s, format=source_format, strict=strict)
             for s in list_splits(source, source_format)}
    classes: list[str] = []
    for ds in parts.values():
        classes += [n for n in ds.classes if n not in classes]
    report = ConversionReport(source_format, to, destination, classes, {}, {}, [])
    for split, ds in parts.items():
        ds = remap_classes(ds, classes)
        WRITERS[to](ds, destination, split, images=images)
        key = split or "all"
        report.images[key] = len(ds)
        report.boxes[key] = int(sum(len(s.target["boxes"]) for s in ds.samples))
        report.skipped += ds.skipped
    return report


def convert_command(source: str, destination: str, to: str, *, source_format: str | None = None,
                    link_images: bool = False, strict: bool = False) -> str:
    """Entry for a ``visionsuite convert SOURCE DEST --to FORMAT`` command: converts and
    returns the one-line summary to print (errors are :class:`VisionsuiteError` lines)."""
    return convert_dataset(source, destination, to, source_format=source_format,
                           images="link" if link_images else "copy", strict=strict).summary()
