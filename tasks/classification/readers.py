"""Dataset formats of the classification task.

* ``folder`` -- one sub-folder per class (``root/<class>/*.jpg``), optionally below
  ``train/``, ``val/``, ``test/`` split folders;
* ``csv`` -- a manifest with columns ``path,label`` (paths relative to the CSV; a float label
  in regression mode; an optional ``split`` column);
* ``idx`` -- the IDX files of MNIST / Fashion-MNIST (``{train,t10k}-{images-idx3,labels-idx1}
  -ubyte[.gz]``), class names from a dataset card.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.data.images import list_images
from visionsuite.data import readers as data_readers
from visionsuite.data.readers import SPLITS, read_csv_rows, resolve_split, subfolders
from visionsuite.errors import DataError, UsageError, did_you_mean
from visionsuite.task import Dataset, Sample

FORMATS = {
    "folder": "one sub-folder of images per class, optionally below train/ val/ test/",
    "csv": "CSV manifest with columns path,label (paths relative to the CSV; optional split)",
    "idx": "IDX files as in MNIST / Fashion-MNIST ({train,t10k}-*-idx*-ubyte[.gz])",
}
# Name of the value "class" of regression datasets (the one model output).
REGRESSION_CLASSES = ["value"]

_IDX_IMAGES = re.compile(r"^(?P<prefix>.+)-images[-.]idx3-ubyte(\.gz)?$")


def detect_format(path: str | Path) -> str:
    """The format of ``path``: ``csv`` for a ``.csv`` file, ``idx`` for IDX files or a folder
    holding them, ``folder`` for any other folder."""
    is_idx = lambda p: bool(_IDX_IMAGES.match(p.name))  # noqa: E731
    return data_readers.detect_format(
        path, FORMATS, file_rules=[(is_idx, "idx")],
        folder_rules=[(lambda p: any(is_idx(q) for q in p.iterdir()), "idx")])


def remap(dataset: Dataset, classes: Sequence[str] | None) -> Dataset:
    """Express ``dataset``'s class indices in ``classes`` (e.g. a model's or the training
    set's), so that a validation set missing a class keeps the same indices. Labels not in
    ``classes`` raise :class:`DataError`."""
    if classes is None or list(classes) == dataset.classes:
        return dataset
    classes = list(classes)
    unknown = sorted(set(dataset.classes) - set(classes))
    used = {s.target for s in dataset.samples}
    unknown = [c for c in unknown if dataset.classes.index(c) in used]
    if unknown:
        raise DataError(f"the data has classes the model does not know: "
                        f"{', '.join(unknown[:5])}. Known: {', '.join(classes[:20])}")
    index = {c: classes.index(c) for c in dataset.classes if c in classes}
    samples = [Sample(s.image, index[dataset.classes[s.target]], s.source)
               for s in dataset.samples]
    return Dataset(classes, samples, list(dataset.skipped))


# === Class-per-folder ===

def read_folder(root: str | Path, *, split: str | None = None, strict: bool = False) -> Dataset:
    """Images in one sub-folder per class; classes are the sub-folder names, sorted.

    With split folders (``train/``, ``val/``, ``test/``), ``split`` picks one and the class
    list is the union over all splits, so every split has the same class indices. An empty
    class folder is reported in ``skipped`` (a :class:`DataError` when ``strict``).
    """
    root = Path(root)
    folder = resolve_split(root, split)
    split_roots = [root / s for s in SPLITS if (root / s).is_dir()] if folder != root else [root]
    classes = sorted({p.name for r in split_roots for p in subfolders(r)})
    if not classes:
        loose = list_images(folder, verify=False)[0]
        what = f"{len(loose)} images directly in it" if loose else "no sub-folders"
        raise DataError(f"{folder}: expected one sub-folder of images per class; found {what}")
    samples, skipped = [], []
    for index, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue  # a class that only other splits have
        paths, bad = list_images(class_dir, recursive=True, strict=strict)
        skipped += bad
        if not paths:
            if strict:
                raise DataError(f"class folder {class_dir} has no readable images (strict mode)")
            skipped.append((str(class_dir), "empty class folder"))
        samples += [Sample(str(p), index, str(p)) for p in paths]
    if not samples:
        raise DataError(f"no readable images under {folder} ({len(skipped)} skipped)")
    return Dataset(classes, samples, skipped)


# === CSV manifest ===

def _sorted_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)  # "2" before "10"
    except ValueError:
        return sorted(labels)


def read_csv(path: str | Path, *, split: str | None = None, strict: bool = False,
             regression: bool = False) -> Dataset:
    """A ``path,label`` manifest. Image paths are relative to the CSV's folder.

    Classification labels are class names (sorted numerically when they are all numbers);
    regression labels are floats and the one class is ``"value"``. With a ``split`` column
    and ``split`` given, only the matching rows are read. Rows whose file is missing or
    unreadable are skipped with a reason (a :class:`DataError` when ``strict``).
    """
    from visionsuite.data.images import check_image_file

    path = Path(path)
    rows = read_csv_rows(path, ("path", "label"))
    if split is not None and "split" in rows[0][1]:
        present = sorted({r["split"] for _, r in rows})
        rows = [(n, r) for n, r in rows if r["split"] == split]
        if not rows:
            raise DataError(f"{path} has no rows of split {split!r}.{did_you_mean(split, present)}")
    base = path.parent
    items, skipped = [], []
    for lineno, row in rows:
        where = f"{path}, line {lineno}"
        label = row["label"]
        if regression:
            try:
                label = float(label)
            except ValueError:
                raise DataError(f"{where}: a regression label must be a number. "
                                f"Received: label={row['label']!r}") from None
            if not np.isfinite(label):
                raise DataError(f"{where}: label is not finite. Received: label={row['label']!r}")
        elif not label:
            raise DataError(f"{where}: empty label")
        image = Path(row["path"]).expanduser()
        image = image if image.is_absolute() else base / image
        reason = check_image_file(image)
        if reason:
            if strict:
                raise DataError(f"{where}: cannot read image {image}: {reason} (strict mode)")
            skipped.append((str(image), f"{reason} (listed at line {lineno})"))
            continue
        items.append((str(image), label, where))
    if not items:
        raise DataError(f"{path}: no readable images ({len(skipped)} rows skipped)")
    if regression:
        return Dataset(list(REGRESSION_CLASSES), [Sample(p, y, w) for p, y, w in items], skipped)
    classes = _sorted_labels({y for _, y, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    return Dataset(classes, [Sample(p, index[y], w) for p, y, w in items], skipped)


# === IDX (MNIST / Fashion-MNIST) ===

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_file(path: str | Path) -> np.ndarray:
    """One IDX file (optionally gzipped) as a numpy array; a damaged file raises
    :class:`DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(shape)) if shape else 0
    payload = data[4 + 4 * ndim:]
    if len(payload) < count * dtype.itemsize:
        raise DataError(f"{path}: truncated IDX file (header says {shape}, "
                        f"{len(payload)} of {count * dtype.itemsize} bytes present)")
    return np.frombuffer(payload, dtype=dtype, count=count).reshape(shape)


def _idx_pair(path: Path, split: str | None) -> tuple[Path, Path]:
    if path.is_file():
        m = _IDX_IMAGES.match(path.name)
        if not m:
            raise DataError(f"{path}: expected an *-images-idx3-ubyte[.gz] file")
        images = path
    else:
        found = {}
        for p in sorted(path.iterdir()):
            m = _IDX_IMAGES.match(p.name)
            if m:
                found.setdefault(m.group("prefix"), p)
        prefix = {"test": "t10k", None: "train"}.get(split, split)
        if prefix not in found:
            names = {"t10k": "test"}
            avail = [names.get(k, k) for k in found]
            raise DataError(f"{path} has no IDX split {split or 'train'!r}."
                            f"{did_you_mean(split or 'train', avail)}")
        images = found[prefix]
    labels = images.with_name(re.sub(r"images([-.])idx3", r"labels\1idx1", images.name))
    if not labels.is_file():
        raise DataError(f"IDX labels file not found next to {images.name}: {labels}")
    return images, labels


def find_card(folder: Path) -> Path | None:
    """The dataset card of ``folder``: its own ``dataset.yaml``, else the card
    ``<folder name>.yaml`` shipped in :mod:`visionsuite.cards`."""
    from visionsuite.cards import card_path

    for card in (folder / "dataset.yaml", card_path(folder.name)):
        if card is not None and card.is_file():
            return card
    return None


def read_idx(path: str | Path, *, split: str | None = None, strict: bool = False) -> Dataset:
    """IDX image and label files; ``split`` ``"train"`` (default) or ``"test"`` (``t10k``).

    ``path`` is the folder holding the files or the images file itself. Class names come
    from the dataset card (:func:`find_card`), else are the label numbers. Images stay in
    memory as gray ``uint8`` arrays (they become RGB when loaded).
    """
    from visionsuite.config import load_yaml

    path = Path(path)
    images_path, labels_path = _idx_pair(path, split)
    images = read_idx_file(images_path)
    labels = read_idx_file(labels_path)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"{images_path}: expected images (N, H, W[, 1|3]). "
                        f"Received: shape={images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: {labels.shape[0] if labels.ndim else 0} labels for "
                        f"{len(images)} images in {images_path.name}")
    card = find_card(images_path.parent)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if card is not None:
        classes = [str(c) for c in load_yaml(card).get("classes", [])]
        if len(classes) < n_classes:
            raise DataError(f"{card}: lists {len(classes)} classes but {labels_path} has "
                            f"label {n_classes - 1}")
    else:
        classes = [str(i) for i in range(n_classes)]
    if labels.min(initial=0) < 0:
        raise DataError(f"{labels_path}: negative labels")
    name = images_path.name
    samples = [Sample(images[i], int(labels[i]), f"{name}[{i}]") for i in range(len(images))]
    return Dataset(classes, samples, [])


def read_dataset(path: str | Path, *, split: str | None = None, format: str | None = None,
                 strict: bool = False, regression: bool = False) -> Dataset:
    """Read ``path`` in ``format`` (detected from the path when ``None``)."""
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise UsageError(f"unknown classification dataset format {fmt!r}."
                         f"{did_you_mean(fmt, FORMATS)} Received: format={fmt!r}")
    if regression and fmt != "csv":
        raise UsageError(f"regression targets are read from a CSV manifest (path,label). "
                         f"Received: format={fmt!r} for {path}")
    if fmt == "csv":
        return read_csv(path, split=split, strict=strict, regression=regression)
    if fmt == "idx":
        return read_idx(path, split=split, strict=strict)
    return read_folder(path, split=split, strict=strict)
