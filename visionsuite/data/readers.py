"""Folder and CSV helpers that task readers build on (formats live in each task)."""

from __future__ import annotations

import csv
from pathlib import Path

from visionsuite.errors import DataError, did_you_mean

SPLITS = ("train", "val", "test")


def resolve_split(root: str | Path, split: str | None) -> Path:
    """The folder holding ``split`` of a dataset rooted at ``root``.

    ``root/<split>/`` when the dataset has split sub-folders (``train/``, ``val/``,
    ``test/``); ``root`` itself when it has none (the caller holds out validation data).
    A missing root, or a split missing next to other splits, raises :class:`DataError`.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset not found: {root}")
    if not root.is_dir():
        raise DataError(f"expected a dataset folder. Received: {root}")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if split is None or not present:
        return root
    if split not in present:
        raise DataError(f"{root} has no {split!r} split.{did_you_mean(split, present)}")
    return root / split


def detect_format(path: str | Path, formats, *, file_rules=(), folder_rules=(),
                  folder: str = "folder") -> str:
    """The dataset format of ``path``, shared by every task's reader.

    Args:
        formats: the task's format names (for the error message).
        file_rules: ``(predicate(path), format)`` tried in order for a file; a ``.csv`` file
            is ``"csv"`` unless a rule says otherwise.
        folder_rules: ``(predicate(path), format)`` tried in order for a folder.
        folder: the format of any other folder.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    if path.is_file():
        for rule, fmt in file_rules:
            if rule(path):
                return fmt
        if path.suffix.lower() == ".csv":
            return "csv"
        raise DataError(f"cannot tell the dataset format of {path}; pass format= one of "
                        f"{', '.join(formats)}")
    for rule, fmt in folder_rules:
        if rule(path):
            return fmt
    return folder


def subfolders(root: str | Path) -> list[Path]:
    """Visible sub-folders of ``root``, sorted by name."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def read_csv_rows(path: str | Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV manifest as ``(line_number, {column: value})``.

    A header naming ``columns`` (any case) is used when present (other columns are kept,
    with lower-case names); without one, the first ``len(columns)`` fields are taken in
    order. Blank lines and lines starting with ``#`` are ignored. A missing file, a missing column or a short row raises
    :class:`DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV manifest {path}: {exc}") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"CSV manifest {path} has no rows")
    rows = list(csv.reader([line for _, line in lines]))
    first = [c.strip().lower() for c in rows[0]]
    header = first if set(columns) <= set(first) else None
    if header is None and any(c in columns for c in first):
        missing = [c for c in columns if c not in first]
        raise DataError(f"CSV manifest {path}: header lacks column(s) {', '.join(missing)}. "
                        f"Received: header={first}")
    out = []
    for (lineno, _), row in zip(lines[1:] if header else lines, rows[1:] if header else rows):
        row = [c.strip() for c in row]
        names = header or list(columns)
        if len(row) < (len(header) if header else len(columns)):
            raise DataError(f"{path}, line {lineno}: expected {len(names)} fields "
                            f"({', '.join(names)}). Received: {','.join(row)!r}")
        out.append((lineno, dict(zip(names, row))))
    return out
