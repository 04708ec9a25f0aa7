"""Dataset formats of the segmentation task, and the class map that gives mask values meaning.

* ``folders`` -- ``images/`` and ``masks/`` side by side (Pascal VOC's ``JPEGImages/`` and
  ``SegmentationClass/`` also work), optionally below ``train/``, ``val/``, ``test/``; a mask
  is the PNG with its image's stem;
* ``csv`` -- a manifest with columns ``image,mask`` (paths relative to the CSV).

Masks are PNGs holding one class id per pixel: single-channel index images, palette images
(as in Pascal VOC: the palette index is the class id) or, when the class map gives every class
a colour, RGB images whose colours are mapped to ids.

The class map (``classes.yaml``, found next to the masks' split folder or the dataset root, or
given as the task option ``class_map``)::

    ignore_index: 255          # pixels with this value do not count (default 255)
    classes:
      - {id: 0, name: background, color: [0, 0, 0]}
      - {id: 1, name: circle, color: [230, 25, 75]}

or just ``classes: [background, circle]`` (ids in order, colours from the Pascal VOC palette).
Ids need not be contiguous: the model's output channels follow the ids in increasing order.

Every mask is checked when the dataset is read (size equal to its image's, every value known
to the class map), and its per-class pixel counts are kept for class weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.data.images import check_image_file, list_images
from visionsuite.data import readers as data_readers
from visionsuite.data.readers import read_csv_rows, resolve_split
from visionsuite.errors import DataError, UsageError, did_you_mean
from visionsuite.task import Dataset, Sample

FORMATS = {
    "folders": "images/ + masks/ (index or palette PNG; also JPEGImages/ + SegmentationClass/), "
               "optionally below train/ val/ test/, with classes.yaml",
    "csv": "CSV manifest with columns image,mask (paths relative to the CSV), classes.yaml beside it",
}
CLASS_MAP_NAMES = ("classes.yaml", "classes.yml")
# Value of ignored pixels in the masks the task hands to losses and metrics, whatever the
# class map's own ignore_index (output channels are 0..C-1 with C < 255).
IGNORE = 255
IMAGE_DIRS = ("images", "JPEGImages")
MASK_DIRS = ("masks", "SegmentationClass", "labels")


def voc_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour palette ``(n, 3)`` uint8 (bit-interleaved class ids)."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """Class names, the mask value (id) of each, display colours and the ignore value.

    Args:
        names: class names in output-channel order.
        ids: the mask value of each class (same order, strictly increasing).
        colors: RGB colour of each class (for RGB masks and drawing).
        ignore_index: mask value of pixels that do not count (in 0..255).
        explicit_colors: whether the colours came from the class map (RGB masks need that).
        source: where the map was read, for error messages.
    """

    names: tuple[str, ...]
    ids: tuple[int, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    explicit_colors: bool = False
    source: str = "class map"

    @classmethod
    def from_names(cls, names: Sequence[str], ignore_index: int = 255) -> "ClassMap":
        palette = voc_palette()
        return cls(tuple(names), tuple(range(len(names))),
                   tuple(tuple(int(v) for v in palette[i]) for i in range(len(names))),
                   ignore_index)

    @property
    def lut(self) -> np.ndarray:
        """256-entry table: mask value -> output channel; ``ignore_index`` becomes
        :data:`IGNORE` and values the map does not list 256 (a sentinel outside uint8)."""
        table = np.full(256, 256, np.int16)
        table[self.ignore_index] = IGNORE
        for k, i in enumerate(self.ids):
            table[i] = k
        return table

    def to_dict(self) -> dict:
        return {"ignore_index": self.ignore_index,
                "classes": [{"id": i, "name": n, "color": list(c)}
                            for i, n, c in zip(self.ids, self.names, self.colors)]}


def read_class_map(path: str | Path) -> ClassMap:
    """Read and check a class-map YAML (see the module docstring)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"class map not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read class map {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or "classes" not in data:
        raise DataError(f"class map {path} must be a mapping with a 'classes' list. "
                        f"Received: {type(data).__name__}")
    unknown = sorted(set(data) - {"classes", "ignore_index"})
    if unknown:
        raise DataError(f"class map {path}: unknown key {unknown[0]!r}."
                        f"{did_you_mean(unknown[0], ['classes', 'ignore_index'])}")
    ignore = data.get("ignore_index", 255)
    if not isinstance(ignore, int) or not 0 <= ignore <= 255:
        raise DataError(f"class map {path}: ignore_index must be an integer in 0..255. "
                        f"Received: ignore_index={ignore!r}")
    entries = data["classes"]
    if not isinstance(entries, list) or not 2 <= len(entries) <= 254:
        raise DataError(f"class map {path}: 'classes' must list 2 to 254 classes. "
                        f"Received: classes={entries!r}")
    palette = voc_palette()
    rows, explicit = [], None
    for k, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise DataError(f"class map {path}: class #{k} needs a name. Received: {entry!r}")
        extra = sorted(set(entry) - {"id", "name", "color"})
        if extra:
            raise DataError(f"class map {path}: class {entry['name']!r} has unknown key "
                            f"{extra[0]!r}.{did_you_mean(extra[0], ['id', 'name', 'color'])}")
        cid = entry.get("id", k)
        if not isinstance(cid, int) or not 0 <= cid <= 255 or cid == ignore:
            raise DataError(f"class map {path}: class {entry['name']!r} needs an id in 0..255 "
                            f"other than ignore_index={ignore}. Received: id={cid!r}")
        has_color = "color" in entry
        if explicit is None:
            explicit = has_color
        elif explicit != has_color:
            raise DataError(f"class map {path}: give a color to every class or to none. "
                            f"Received: class {entry['name']!r} without/with color")
        color = entry.get("color", palette[cid].tolist())
        if (not isinstance(color, (list, tuple)) or len(color) != 3
                or not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise DataError(f"class map {path}: class {entry['name']!r} color must be [r, g, b] "
                            f"in 0..255. Received: color={color!r}")
        rows.append((cid, str(entry["name"]), tuple(int(v) for v in color)))
    for what, column in (("id", 0), ("name", 1), ("color", 2)):
        seen: dict = {}
        for row in rows:
            if row[column] in seen:
                raise DataError(f"class map {path}: duplicate {what} {row[column]!r} (classes "
                                f"{seen[row[column]]!r} and {row[1]!r})")
            seen[row[column]] = row[1]
    rows.sort()
    return ClassMap(tuple(r[1] for r in rows), tuple(r[0] for r in rows),
                    tuple(r[2] for r in rows), ignore, bool(explicit), str(path))


def write_class_map(class_map: ClassMap, path: str | Path) -> Path:
    """Write ``class_map`` as YAML (atomic)."""
    import yaml

    from visionsuite.files import write_bytes_atomic

    text = yaml.safe_dump(class_map.to_dict(), sort_keys=False, default_flow_style=None)
    return write_bytes_atomic(path, text.encode())


@dataclasses.dataclass(frozen=True)
class MaskTarget:
    """The target of one sample: its mask file, the class map and its pixel count per class."""

    path: str
    class_map: ClassMap = dataclasses.field(repr=False)
    counts: tuple[int, ...] = ()


def _open_mask(path: Path):
    from PIL import Image, UnidentifiedImageError

    reason = check_image_file(path)
    if reason:
        raise DataError(f"cannot read mask {path}: {reason}")
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read mask {path}: {exc}") from exc


def read_mask(path: str | Path, class_map: ClassMap, *, check: bool = True) -> np.ndarray:
    """A mask file as ``(H, W)`` uint8 output-channel indices (ignored pixels: :data:`IGNORE`).

    Index and palette PNGs give class ids directly; RGB masks are mapped through the class
    map's colours (which it must then define). With ``check``, a value the class map does not
    know raises :class:`DataError` naming the file and the value.
    """
    path = Path(path)
    img = _open_mask(path)
    try:
        mode = img.mode
        if mode in ("P", "L", "I;16", "I"):
            values = np.asarray(img)
            if values.dtype != np.uint8:
                if values.size and values.max() > 255:
                    raise DataError(f"mask {path}: values above 255 are not class ids. "
                                    f"Received: value {int(values.max())}")
                values = values.astype(np.uint8)
        elif mode in ("RGB", "RGBA"):
            if not class_map.explicit_colors:
                raise DataError(f"mask {path} is an RGB image but the class map "
                                f"({class_map.source}) gives no colors; add color: [r, g, b] to "
                                f"each class or save the masks as index/palette PNGs")
            values = _rgb_to_ids(np.asarray(img.convert("RGB")), class_map, path)
        else:
            raise DataError(f"mask {path}: unsupported PNG mode {mode!r}; use an index "
                            f"(L), palette (P) or RGB PNG")
    finally:
        img.close()
    lut = class_map.lut
    out = lut[values]
    if check and (out == 256).any():
        bad = int(values[out == 256][0])
        raise DataError(f"mask {path} has value {bad}, which the class map ({class_map.source}) "
                        f"does not list (ids {list(class_map.ids)}, ignore_index "
                        f"{class_map.ignore_index})")
    out[out == 256] = IGNORE
    return out.astype(np.uint8)


def _rgb_to_ids(rgb: np.ndarray, class_map: ClassMap, path: Path) -> np.ndarray:
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    ids = np.full(key.shape, -1, np.int32)
    for cid, (r, g, b) in zip(class_map.ids, class_map.colors):
        ids[key == ((r << 16) | (g << 8) | b)] = cid
    if (ids < 0).any():
        y, x = np.argwhere(ids < 0)[0]
        raise DataError(f"mask {path} has color {tuple(int(v) for v in rgb[y, x])} at "
                        f"(x={x}, y={y}), which the class map ({class_map.source}) does not list")
    return ids.astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError):
        return None


def find_class_map(*folders: Path) -> Path:
    for folder in folders:
        for name in CLASS_MAP_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise DataError(f"no class map found: put classes.yaml in {folders[0]}"
                    f"{' or ' + str(folders[-1]) if len(folders) > 1 else ''} or set "
                    f"task.class_map=PATH")


def detect_format(path: str | Path) -> str:
    """``csv`` for a CSV manifest, ``folders`` for a dataset folder."""
    return data_readers.detect_format(path, FORMATS, folder="folders")


def _subdir(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    raise DataError(f"{folder} has no {what} folder (expected one of: {', '.join(names)})")


def _class_map(class_map, classes, *folders: Path) -> "ClassMap":
    """The class map given, else ``classes.yaml`` found in ``folders``, else (for data read
    against a model) the model's class names with mask value = class index."""
    if class_map:
        return read_class_map(class_map)
    try:
        return read_class_map(find_class_map(*folders))
    except DataError:
        if classes is None:
            raise
        return ClassMap.from_names(list(classes))


def read_dataset(path: str | Path, *, split: str | None = None, format: str | None = None,
                 strict: bool = False, class_map: str | Path | None = None,
                 check_masks: bool = True, classes: Sequence[str] | None = None) -> Dataset:
    """Read a segmentation dataset (see the module docstring).

    Args:
        path: dataset root or split folder, or a CSV manifest.
        split: ``train`` / ``val`` / ``test`` sub-folder to read when the root has them.
        format: ``folders`` or ``csv``; default detected.
        strict: raise at the first unreadable image instead of skipping it.
        class_map: a class-map YAML; default ``classes.yaml`` found next to the data.
        check_masks: read every mask now to check its values and size and count its
            pixels per class (needed for class weights).
        classes: the class names expected (a model's): used when no class map is found in
            the split folder, the given folder or its parent (mask value = class index).
    """
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise UsageError(f"unknown segmentation dataset format {fmt!r}.{did_you_mean(fmt, FORMATS)}")
    path = Path(path)
    skipped: list[tuple[str, str]] = []
    if fmt == "csv":
        root = path.parent
        cmap = _class_map(class_map, classes, root)
        pairs = []
        for lineno, row in read_csv_rows(path, ("image", "mask")):
            pairs.append((root / row["image"], root / row["mask"], f"{path}, line {lineno}"))
    else:
        folder = resolve_split(path, split)
        cmap = _class_map(class_map, classes, *dict.fromkeys([folder, path, path.parent]))
        image_dir = _subdir(folder, IMAGE_DIRS, "image")
        mask_dir = _subdir(folder, MASK_DIRS, "mask")
        images, skipped = list_images(image_dir, strict=strict)
        pairs = []
        for image in images:
            mask = mask_dir / f"{image.stem}.png"
            pairs.append((image, mask, str(image)))
    samples = []
    for image, mask, where in pairs:
        reason = check_image_file(image)
        if reason:
            if strict:
                raise DataError(f"cannot read image {image}: {reason}")
            skipped.append((str(image), reason))
            continue
        if not mask.is_file():
            raise DataError(f"image {image} has no mask: expected {mask}")
        counts: tuple[int, ...] = ()
        if check_masks:
            values = read_mask(mask, cmap)
            size = _image_size(image)
            if size is None:
                if strict:
                    raise DataError(f"cannot read image {image}: unknown format")
                skipped.append((str(image), "cannot read the image header"))
                continue
            if size != (values.shape[1], values.shape[0]):
                raise DataError(f"mask {mask} is {values.shape[1]}x{values.shape[0]} but its image "
                                f"{image} is {size[0]}x{size[1]}")
            counts = tuple(int(c) for c in np.bincount(values.reshape(-1), minlength=256)
                           [: len(cmap.ids)])
        samples.append(Sample(image=str(image), target=MaskTarget(str(mask), cmap, counts),
                              source=where))
    return Dataset(list(cmap.names), samples, skipped)


def class_pixel_counts(dataset: Dataset) -> np.ndarray:
    """Pixels per class over ``dataset`` (from the counts taken when it was read)."""
    total = np.zeros(len(dataset.classes), np.int64)
    for s in dataset.samples:
        counts = getattr(s.target, "counts", ())
        if len(counts) != len(total):
            raise DataError(f"{s.source or s.image}: no pixel counts; read the dataset with "
                            f"check_masks=True to compute class weights")
        total += np.asarray(counts, np.int64)
    return total


def class_weights(dataset: Dataset, *, power: float = 0.5, max_weight: float = 10.0) -> np.ndarray:
    """Inverse-frequency class weights ``(1 / freq) ** power``, normalised to mean 1 over the
    classes present in ``dataset`` and capped at ``max_weight``; absent classes get 1."""
    counts = class_pixel_counts(dataset).astype(np.float64)
    present = counts > 0
    weights = np.ones(len(counts))
    if present.any():
        freq = counts[present] / counts[present].sum()
        w = freq ** -power
        w = w / w.mean()
        weights[present] = np.minimum(w, max_weight)
    return weights.astype(np.float32)
