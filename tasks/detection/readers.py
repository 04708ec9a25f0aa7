"""Dataset formats of the detection task: COCO JSON, YOLO txt and Pascal VOC XML.

Every reader returns a :class:`~visionsuite.task.Dataset` whose samples are
``Sample(image=<path>, target={"boxes", "classes", "size"}, source=<path>)``:

* ``boxes`` -- float32 ``(N, 4)``, ``x1, y1, x2, y2`` in source-image pixels;
* ``classes`` -- int32 ``(N,)``, indices into ``Dataset.classes``;
* ``size`` -- ``(height, width)`` of the image.

Every box is checked (:func:`check_boxes`): coordinates must be finite; a box that overshoots
the image by a little (:data:`OVERSHOOT_TOLERANCE`: 2 % of the image side, at least 1 px,
as annotation tools leave) is clipped to it, one further outside is skipped; a box narrower or
lower than :data:`MIN_BOX_SIZE` pixels after clipping is skipped, and so is one whose class is
not in the class list. Skipped boxes and unreadable images are listed in
``Dataset.skipped`` as ``(item, reason)`` (``strict=True`` raises
:class:`~visionsuite.errors.DataError` at the first one instead). Images without boxes are
kept: they are valid negatives. A file that holds the whole dataset and cannot be parsed (a
corrupt COCO JSON, a corrupt ``data.yaml``) raises one ``DataError`` line; a corrupt per-image
VOC XML file is a skipped item.

Layouts (``split`` is ``train``, ``val``, ``test`` or ``None``; ``None`` reads a COCO or YOLO
dataset's only annotation set, or its ``train`` split when it has several, and every
annotation file of a VOC dataset):

* ``coco`` -- ``ROOT/annotations/instances_<split>.json`` (or ``ROOT/<split>.json``,
  ``ROOT/<split>/_annotations.coco.json``, or the path of a JSON file), images under
  ``ROOT/images/<split>/`` (or ``ROOT/<split>/``, ``ROOT/images/``, the JSON's folder).
  Classes are the categories in order of their ids; crowd annotations are left out.
* ``yolo`` -- ``ROOT/data.yaml`` (``names`` plus ``train``/``val``/``test`` image folders or
  list files), or ``ROOT/classes.txt`` with ``ROOT/images/[<split>/]``; labels are found by
  replacing the last ``images`` folder of an image path with ``labels`` and the suffix with
  ``.txt``: one ``class cx cy w h`` line per box (normalised), or ``class x1 y1 x2 y2 ...``
  polygon lines (their bounding box). A missing or empty label file is a negative image.
* ``voc`` -- ``ROOT/Annotations/*.xml`` with images in ``ROOT/JPEGImages/``, split lists in
  ``ROOT/ImageSets/Main/<split>.txt``; or a folder of ``.xml`` files beside their images
  (LabelImg). Class order: ``ROOT/labels.txt`` when present, else sorted names. VOC corners
  are 1-based pixel indices: ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.data.images import IMAGE_EXTENSIONS, check_image_file, is_image_file
from visionsuite.errors import DataError, UsageError, did_you_mean
from visionsuite.task import Dataset, Sample

FORMATS = {
    "coco": "COCO JSON: annotations/instances_<split>.json + images/<split>/",
    "yolo": "YOLO txt: data.yaml (or classes.txt) + images/<split>/ + labels/<split>/",
    "voc": "Pascal VOC XML: Annotations/*.xml + JPEGImages/ (+ ImageSets/Main/<split>.txt)",
}
SPLITS = ("train", "val", "test")
# (float) a box may overshoot the image by this fraction of the image side (at least 1 px)
# and is clipped; further outside, it is skipped
OVERSHOOT_TOLERANCE = 0.02
# (float) boxes narrower or lower than this (pixels, after clipping) are skipped
MIN_BOX_SIZE = 1.0


def empty_target(size: tuple[int, int]) -> dict:
    return {"boxes": np.zeros((0, 4), np.float32), "classes": np.zeros((0,), np.int32),
            "size": (int(size[0]), int(size[1]))}


def check_boxes(boxes, class_ids, size: tuple[int, int], num_classes: int, item: str,
                labels: Sequence | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Validate xyxy ``boxes`` with ``class_ids`` (-1 for an unknown class name) on an image
    of ``size`` = ``(height, width)``.

    Returns the kept boxes (clipped), their classes, and ``(item, reason)`` for each skipped
    box (``item`` is ``"<item> box <k>"``, k counting from 0 in file order). ``labels`` are
    the class labels as written in the file (names or indices), for the messages.
    """
    h, w = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    class_ids = np.asarray(class_ids, np.int64).reshape(-1)
    tol_x, tol_y = max(1.0, OVERSHOOT_TOLERANCE * w), max(1.0, OVERSHOOT_TOLERANCE * h)
    keep, skipped = [], []
    for k, (box, cls) in enumerate(zip(boxes, class_ids)):
        x1, y1, x2, y2 = box
        where = f"{item} box {k}"
        if not np.all(np.isfinite(box)):
            skipped.append((where, f"non-finite coordinates {box.tolist()}"))
        elif cls < 0 or cls >= num_classes:
            label = labels[k] if labels is not None else int(cls)
            skipped.append((where, f"unknown class {label!r}"))
        elif x2 <= x1 or y2 <= y1:
            skipped.append((where, f"not a positive size: x1,y1,x2,y2={_fmt(box)}"))
        elif x1 < -tol_x or y1 < -tol_y or x2 > w + tol_x or y2 > h + tol_y:
            skipped.append((where, f"outside the {w}x{h} image: x1,y1,x2,y2={_fmt(box)}"))
        else:
            c = np.array([min(max(x1, 0), w), min(max(y1, 0), h),
                          min(max(x2, 0), w), min(max(y2, 0), h)])
            if c[2] - c[0] < MIN_BOX_SIZE or c[3] - c[1] < MIN_BOX_SIZE:
                skipped.append((where, f"smaller than {MIN_BOX_SIZE:g} px inside the image: "
                                       f"x1,y1,x2,y2={_fmt(box)}"))
            else:
                keep.append((c, cls))
    if not keep:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), skipped
    return (np.array([c for c, _ in keep], np.float32),
            np.array([k for _, k in keep], np.int32), skipped)


def _fmt(box) -> str:
    return ",".join(f"{float(v):g}" for v in box)


def _finish(classes: list[str], samples: list[Sample], skipped: list, strict: bool,
            what: str) -> Dataset:
    if strict and skipped:
        item, reason = skipped[0]
        raise DataError(f"{item}: {reason} (strict mode; without it the item is skipped)")
    if not samples:
        first = f"; first skipped: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"{what}: no usable images{first}")
    return Dataset(classes=list(classes), samples=samples, skipped=skipped)


def image_size_of(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` from the image header (no decoding), or None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _class_index(names: Sequence[str], classes: Sequence[str] | None) -> tuple[list[str], dict]:
    """The dataset's class list and name -> index; names not in ``classes`` map to -1."""
    if classes is None:
        return list(names), {n: i for i, n in enumerate(names)}
    classes = list(classes)
    lookup = {n: i for i, n in enumerate(classes)}
    return classes, {n: lookup.get(n, -1) for n in names}


# === COCO JSON ===
def _coco_json_for(root: Path, split: str | None) -> Path:
    if root.is_file():
        return root
    names = [split] if split else ["train", "val", "test", "default", "annotations"]
    candidates = []
    for s in names:
        candidates += [root / "annotations" / f"instances_{s}.json", root / "annotations" /
                       f"{s}.json", root / f"{s}.json", root / s / "_annotations.coco.json",
                       root / f"instances_{s}.json"]
    for c in candidates:
        if c.is_file():
            return c
    jsons = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
    if split is None and len(jsons) == 1:
        return jsons[0]
    raise DataError(f"{root}: no COCO annotation file for split {split!r} (looked for "
                    f"annotations/instances_<split>.json, <split>.json, "
                    f"<split>/_annotations.coco.json). Received: split={split!r}")


def _coco_image_dirs(json_path: Path, root: Path, split: str | None) -> list[Path]:
    dirs = []
    base = root if root.is_dir() else json_path.parent
    if json_path.parent.name == "annotations":
        base = json_path.parent.parent
    if split:
        dirs += [base / "images" / split, base / split]
    stem = json_path.stem.replace("instances_", "")
    dirs += [base / "images" / stem, base / stem, base / "images", json_path.parent, base]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def load_json(path: Path, what: str) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt {what} (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg})") from exc


def read_coco(path: str | Path, *, split: str | None = None, image_dir: str | Path | None = None,
              classes: Sequence[str] | None = None, strict: bool = False) -> Dataset:
    """Read a COCO detection JSON (see the module docstring for the layout).

    Args:
        path: the JSON file, or the dataset root.
        split: ``train``, ``val``, ``test`` or None.
        image_dir: folder that ``file_name`` is relative to (default: searched).
        classes: fixes the class list and indices (e.g. the training set's); categories not in
            it make their boxes skipped as unknown.
        strict: raise at the first skipped item.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"dataset not found: {root}")
    json_path = _coco_json_for(root, split)
    data = load_json(json_path, "COCO JSON")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{json_path}: not a COCO detection file (no 'images' list)")
    cats = data.get("categories")
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c and "name" in c
                                             for c in cats):
        raise DataError(f"{json_path}: not a COCO detection file ('categories' must be a list "
                        f"of {{id, name}})")
    anns = data.get("annotations") or []
    if not isinstance(anns, list):
        raise DataError(f"{json_path}: 'annotations' must be a list. Received: "
                        f"{type(anns).__name__}")
    cats = sorted(cats, key=lambda c: c["id"])
    names, by_name = _class_index([str(c["name"]) for c in cats], classes)
    cat_index = {c["id"]: by_name[str(c["name"])] for c in cats}
    dirs = [Path(image_dir)] if image_dir else _coco_image_dirs(json_path, root, split)
    skipped: list[tuple[str, str]] = []
    per_image: dict = {}
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or "image_id" not in ann:
            skipped.append((f"{json_path} annotation {k}", "no image_id"))
            continue
        per_image.setdefault(ann["image_id"], []).append((k, ann))
    samples = []
    for im in data["images"]:
        try:
            file_name, h, w = str(im["file_name"]), int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError):
            skipped.append((f"{json_path} image {im.get('id') if isinstance(im, dict) else im}",
                            "needs file_name, width and height"))
            continue
        image = next((d / file_name for d in dirs if (d / file_name).is_file()),
                     (dirs[0] if dirs else json_path.parent) / file_name)
        reason = check_image_file(image)
        if reason:
            skipped.append((str(image), reason))
            continue
        boxes, cls, labels = [], [], []
        for k, ann in per_image.pop(im.get("id"), []):
            if ann.get("iscrowd", 0):
                continue  # crowd regions: not instances (COCOeval ignores them as well)
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4):
                skipped.append((f"{image} annotation {k}", f"bbox must be [x, y, w, h]. "
                                                           f"Received: {bbox!r}"))
                continue
            try:
                x, y, bw, bh = (float(v) for v in bbox)
            except (TypeError, ValueError):
                skipped.append((f"{image} annotation {k}", f"non-numeric bbox {bbox!r}"))
                continue
            boxes.append([x, y, x + bw, y + bh])
            cls.append(cat_index.get(ann.get("category_id"), -1))
            labels.append(f"category_id {ann.get('category_id')}")
        kept, kept_cls, bad = check_boxes(boxes, cls, (h, w), len(names), str(image),
                                          labels=labels)
        skipped += bad
        samples.append(Sample(image=image, target={"boxes": kept, "classes": kept_cls,
                                                   "size": (h, w)}, source=str(image)))
    for image_id, rest in per_image.items():
        skipped.append((f"{json_path} annotation {rest[0][0]}",
                        f"image_id {image_id!r} is not in 'images'"))
    return _finish(names, samples, skipped, strict, str(json_path))


# === YOLO txt ===
def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        line = str(exc).strip().splitlines()
        raise DataError(f"{path}: corrupt YAML ({' '.join(line[:2])[:160]})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with 'names'. Received: "
                        f"{type(data).__name__}")
    return data


def _yolo_yaml(root: Path) -> Path | None:
    if root.is_file() and root.suffix in (".yaml", ".yml"):
        return root
    if not root.is_dir():
        return None
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    found = [p for p in sorted(root.glob("*.y*ml")) if "names" in p.read_text(errors="ignore")]
    return found[0] if len(found) == 1 else None


def _yaml_names(names, path: Path) -> list[str]:
    if isinstance(names, dict):
        try:
            order = sorted(names, key=int)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: 'names' keys must be class indices") from exc
        if [int(k) for k in order] != list(range(len(order))):
            raise DataError(f"{path}: 'names' indices must be 0..{len(order) - 1}. Received: "
                            f"{[int(k) for k in order]}")
        return [str(names[k]) for k in order]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise DataError(f"{path}: 'names' must be a list or a {{index: name}} mapping. "
                    f"Received: {names!r}")


def yolo_layout(path: str | Path) -> tuple[list[str], dict[str | None, list[Path]]]:
    """The class names and, per split, the folders or list files of images of a YOLO
    dataset at ``path`` (a root folder or a ``data.yaml``)."""
    path = Path(path)
    yaml_path = _yolo_yaml(path)
    if yaml_path is not None:
        data = _read_yaml(yaml_path)
        if "names" not in data:
            raise DataError(f"{yaml_path}: no 'names' (the class list)")
        names = _yaml_names(data["names"], yaml_path)
        base = Path(data.get("path") or ".")
        base = base if base.is_absolute() else yaml_path.parent / base
        if not base.is_dir():
            base = yaml_path.parent
        splits: dict = {}
        for s in SPLITS:
            entries = data.get(s)
            if not entries:
                continue
            entries = entries if isinstance(entries, list) else [entries]
            splits[s] = [p if Path(p).is_absolute() else base / p
                         for p in (Path(str(e)) for e in entries)]
        if not splits:
            raise DataError(f"{yaml_path}: names no split (train/val/test)")
        return names, splits
    root = path
    txt = next((p for p in (root / "classes.txt", root / "labels" / "classes.txt",
                            root / "obj.names") if p.is_file()), None)
    if txt is None:
        raise DataError(f"{root}: not a YOLO dataset (no data.yaml, classes.txt or obj.names)")
    names = [n.strip() for n in txt.read_text(encoding="utf-8").splitlines() if n.strip()]
    images = root / "images"
    present = [s for s in SPLITS if (images / s).is_dir()]
    if present:
        return names, {s: [images / s] for s in present}
    if images.is_dir():
        return names, {None: [images]}
    raise DataError(f"{root}: no images/ folder next to {txt.name}")


def label_path_for(image: Path) -> Path:
    """The YOLO label file of ``image``: the last ``images`` folder becomes ``labels``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _yolo_images(entry: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if is_image_file(p)
                      and not p.name.startswith("."))
    if entry.is_file() and entry.suffix == ".txt":
        lines = [ln.strip() for ln in entry.read_text(encoding="utf-8").splitlines()]
        return [Path(ln) if Path(ln).is_absolute() else entry.parent / ln for ln in lines if ln]
    raise DataError(f"YOLO split entry not found: {entry}")


def parse_yolo_labels(text: str, size: tuple[int, int], item: str
                      ) -> tuple[list, list, list[tuple[str, str]]]:
    """Parse one YOLO label file: ``(boxes xyxy pixels, class ids, skipped lines)``."""
    h, w = size
    boxes, cls, skipped = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            skipped.append((f"{item} line {n}", f"non-numeric values {line.strip()[:60]!r}"))
            continue
        if values[0] != int(values[0]):
            skipped.append((f"{item} line {n}", f"class must be an integer. Received: "
                                                f"{fields[0]}"))
            continue
        if len(values) == 5:
            cx, cy, bw, bh = values[1:]
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
        elif len(values) >= 7 and len(values) % 2 == 1:  # polygon: class x1 y1 x2 y2 ...
            xs, ys = np.array(values[1::2]) * w, np.array(values[2::2]) * h
            box = [xs.min(), ys.min(), xs.max(), ys.max()]
        else:
            skipped.append((f"{item} line {n}", f"expected 'class cx cy w h' (5 values). "
                                                f"Received: {len(values)} values"))
            continue
        boxes.append(box)
        cls.append(int(values[0]))
    return boxes, cls, skipped


def read_yolo(path: str | Path, *, split: str | None = None,
              classes: Sequence[str] | None = None, strict: bool = False) -> Dataset:
    """Read a YOLO txt dataset (see the module docstring for the layout)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    names, splits = yolo_layout(path)
    if split not in splits:
        if split is None:
            split = next(iter(splits))
        else:
            raise DataError(f"{path} has no {split!r} split."
                            f"{did_you_mean(split, map(str, splits))}")
    index = (list(range(len(names))) if classes is None
             else [list(classes).index(n) if n in classes else -1 for n in names])
    out_names = list(names) if classes is None else list(classes)
    samples, skipped = [], []
    for entry in splits[split]:
        for image in _yolo_images(entry):
            reason = check_image_file(image)
            size = None if reason else image_size_of(image)
            if size is None:
                skipped.append((str(image), reason or "cannot read the image header"))
                continue
            label = label_path_for(image)
            text = ""
            if label.is_file():
                try:
                    text = label.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    skipped.append((str(label), f"cannot read ({exc})"))
                    continue
            boxes, cls, bad = parse_yolo_labels(text, size, str(label))
            skipped += bad
            mapped = [index[c] if 0 <= c < len(index) else -1 for c in cls]
            kept, kept_cls, bad = check_boxes(boxes, mapped, size, len(out_names), str(label),
                                              labels=cls)
            skipped += bad
            samples.append(Sample(image=image, target={"boxes": kept, "classes": kept_cls,
                                                       "size": size}, source=str(image)))
    return _finish(out_names, samples, skipped, strict, f"{path} ({split or 'all'})")


# === Pascal VOC XML ===
def _voc_dirs(root: Path) -> tuple[Path, Path | None]:
    """(annotation folder, image folder or None when images sit beside the XML)."""
    if (root / "Annotations").is_dir():
        return root / "Annotations", root / "JPEGImages" if (root / "JPEGImages").is_dir() \
            else None
    return root, None


def voc_splits(root: str | Path) -> list[str | None]:
    """The split lists of a VOC dataset (``ImageSets/Main/<split>.txt``), or ``[None]``."""
    main = Path(root) / "ImageSets" / "Main"
    found = [s for s in SPLITS if (main / f"{s}.txt").is_file()]
    return found or [None]


def _xml_text(node, tag: str) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text else None


def parse_voc_xml(xml_path: Path) -> tuple[str, tuple[int, int] | None, list[tuple[str, list]]]:
    """``(filename, (height, width) or None, [(name, [xmin, ymin, xmax, ymax]), ...])``;
    raises :class:`DataError` for a corrupt file."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as exc:
        raise DataError(f"{xml_path}: corrupt XML ({exc})") from exc
    except OSError as exc:
        raise DataError(f"cannot read {xml_path}: {exc}") from exc
    node = tree.getroot()
    if node.tag != "annotation":
        raise DataError(f"{xml_path}: not a VOC annotation (root element <{node.tag}>)")
    filename = _xml_text(node, "filename") or ""
    size = None
    s = node.find("size")
    if s is not None:
        try:
            w, h = int(float(_xml_text(s, "width") or 0)), int(float(_xml_text(s, "height") or 0))
            size = (h, w) if w > 0 and h > 0 else None
        except ValueError:
            size = None
    objects = []
    for obj in node.findall("object"):
        name = _xml_text(obj, "name") or ""
        bb = obj.find("bndbox")
        coords = [math.nan] * 4
        if bb is not None:
            try:
                coords = [float(_xml_text(bb, t) or "nan") for t in ("xmin", "ymin", "xmax",
                                                                     "ymax")]
            except ValueError:
                pass
        objects.append((name, coords))
    return filename, size, objects


def _voc_classes(root: Path, xml_files: list[Path]) -> list[str]:
    for name in ("labels.txt", "classes.txt"):
        if (root / name).is_file():
            return [n.strip() for n in (root / name).read_text(encoding="utf-8").splitlines()
                    if n.strip()]
    names = set()
    for x in xml_files:
        try:
            names.update(n for n, _ in parse_voc_xml(x)[2])
        except DataError:
            continue
    return sorted(n for n in names if n)


def read_voc(path: str | Path, *, split: str | None = None,
             classes: Sequence[str] | None = None, strict: bool = False) -> Dataset:
    """Read a Pascal VOC XML dataset (see the module docstring for the layout)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    ann_dir, img_dir = _voc_dirs(root)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if split is not None and split_file.is_file():
        ids = [ln.split()[0] for ln in split_file.read_text(encoding="utf-8").splitlines()
               if ln.strip()]
        xml_files = [ann_dir / f"{i}.xml" for i in ids]
    elif split is not None and voc_splits(root) != [None]:
        raise DataError(f"{root} has no {split!r} split."
                        f"{did_you_mean(split, [s for s in voc_splits(root) if s])}")
    else:
        xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DataError(f"{root}: no VOC annotation files (Annotations/*.xml)")
    all_names = _voc_classes(root, sorted(ann_dir.glob("*.xml")))
    names = list(classes) if classes is not None else all_names
    lookup = {n: i for i, n in enumerate(names)}
    samples, skipped = [], []
    for xml_path in xml_files:
        if not xml_path.is_file():
            skipped.append((str(xml_path), "annotation file not found"))
            continue
        try:
            filename, size, objects = parse_voc_xml(xml_path)
        except DataError as exc:
            skipped.append((str(xml_path), str(exc).split(": ", 1)[-1]))
            continue
        folder = img_dir or xml_path.parent
        image = folder / filename if filename else None
        if image is None or not image.is_file():
            image = next((folder / (xml_path.stem + e) for e in IMAGE_EXTENSIONS
                          if (folder / (xml_path.stem + e)).is_file()), image)
        reason = check_image_file(image) if image is not None else "no <filename>"
        if reason:
            skipped.append((str(image or xml_path), reason))
            continue
        size = size or image_size_of(image)
        if size is None:
            skipped.append((str(image), "cannot read the image header"))
            continue
        boxes = [[x1 - 1, y1 - 1, x2, y2] for _, (x1, y1, x2, y2) in objects]
        cls = [lookup.get(n, -1) for n, _ in objects]
        kept, kept_cls, bad = check_boxes(boxes, cls, size, len(names), str(xml_path),
                                          labels=[n for n, _ in objects])
        skipped += bad
        samples.append(Sample(image=image, target={"boxes": kept, "classes": kept_cls,
                                                   "size": size}, source=str(image)))
    return _finish(names, samples, skipped, strict, f"{root} ({split or 'all'})")


# === Format detection and dispatch ===
def detect_format(path: str | Path) -> str:
    """The format of the dataset at ``path``: ``coco``, ``yolo`` or ``voc``.

    A ``.json`` file is COCO, a ``.yaml`` file YOLO; a folder is VOC when it has
    ``Annotations/`` (or ``.xml`` files), YOLO when it has a ``data.yaml``, ``classes.txt`` or
    ``labels/``, COCO when it has ``annotations/*.json`` or ``*.json``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DataError(f"cannot tell the detection dataset format of {path}: expected a "
                        f"COCO .json, a YOLO data.yaml or a folder. Received: {path.name}")
    if (path / "Annotations").is_dir():
        return "voc"
    if _yolo_yaml(path) is not None or (path / "classes.txt").is_file() or (
            path / "labels").is_dir():
        return "yolo"
    if any((path / "annotations").glob("*.json")) or any(path.glob("*.json")) or any(
            path.glob("*/_annotations.coco.json")):
        return "coco"
    if any(path.glob("*.xml")):
        return "voc"
    raise DataError(f"cannot tell the detection dataset format of {path}: no "
                    f"annotations/*.json (COCO), data.yaml / classes.txt + labels/ (YOLO) or "
                    f"Annotations/*.xml (VOC); pass format= one of {', '.join(FORMATS)}")


READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc}


def list_splits(path: str | Path, format: str | None = None) -> list[str | None]:
    """The splits present in a dataset (``[None]`` when it has none)."""
    path = Path(path)
    format = format or detect_format(path)
    if format == "yolo":
        return list(yolo_layout(path)[1])
    if format == "voc":
        return voc_splits(path)
    if path.is_file():
        return [None]
    found = []
    for s in SPLITS:
        try:
            _coco_json_for(path, s)
            found.append(s)
        except DataError:
            continue
    return found or [None]


def read_dataset(path: str | Path, *, split: str | None = None, format: str | None = None,
                 classes: Sequence[str] | None = None, strict: bool = False) -> Dataset:
    """Read a detection dataset in any of :data:`FORMATS` (detected when ``format`` is None)."""
    if format is not None and format not in READERS:
        raise UsageError(f"unknown detection dataset format.{did_you_mean(format, READERS)} "
                         f"Received: format={format!r}")
    format = format or detect_format(path)
    return READERS[format](path, split=split, classes=classes, strict=strict)
