"""Case tables with patient ids, and splits that never put one patient on both sides.

A case is an image (NIfTI file, DICOM file or series folder, or a 2D image), an optional label
on the same grid, and the patient it belongs to. Every split here is grouped by patient
(scikit-learn's ``GroupShuffleSplit`` / ``GroupKFold``): scans of one patient are never in
both training and validation/test.

Two ways to describe a dataset:

* a CSV file with a header ``image,label,patient`` (``label`` may be empty or absent; paths
  relative to the CSV's folder). A missing ``patient`` column is refused unless
  ``patients="case"`` says every case is its own patient.
* a folder with ``images/`` and ``labels/`` (or nnU-Net's ``imagesTr/`` and ``labelsTr/``),
  matched by case id: the file name without ``.nii.gz``/``.nii``/``.dcm``/``.png``, without an
  nnU-Net channel suffix ``_0000``; a sub-folder of ``images/`` is a DICOM series named by the
  folder. Patients come from ``patients.csv`` (``case,patient``) when the folder has one, else
  from ``patient_pattern`` (a regular expression whose first group, or whole match, taken
  from the case id is the patient), else each case is its own patient.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError

CASE_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
_CHANNEL = re.compile(r"_\d{4}$")


@dataclasses.dataclass(frozen=True)
class Case:
    """One image (and label) of one patient."""

    case_id: str
    image: Path
    label: Path | None
    patient: str


def case_id_of(path: Path) -> str:
    """The case id of an image or label path (see the module docstring)."""
    name = path.name
    for suffix in CASE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _CHANNEL.sub("", name)


class CaseTable:
    """An ordered list of cases with patient-grouped splits.

    Args:
        cases: the cases; ids must be unique and files must exist.

    Example:
        >>> table = CaseTable.read("data/cases.csv")
        >>> parts = table.split(val=0.2, test=0.2, seed=0)   # {"train", "val", "test"}
        >>> for train, val in table.kfold(5): ...
    """

    def __init__(self, cases: Sequence[Case]):
        self.cases = tuple(cases)
        ids = [c.case_id for c in self.cases]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise DataError(f"case ids must be unique. Received: duplicates {dup[:5]}")
        missing = [str(p) for c in self.cases for p in (c.image, c.label)
                   if p is not None and not p.exists()]
        if missing:
            raise DataError(f"{len(missing)} case file(s) do not exist, e.g. {missing[0]}. "
                            f"Received: {len(self.cases)} cases")

    # --- reading
    @classmethod
    def read(cls, path: str | Path, **kwargs) -> CaseTable:
        """A CSV file or a dataset folder (see the module docstring)."""
        path = Path(path)
        if path.is_dir():
            return cls.from_folder(path, **kwargs)
        if path.suffix.lower() == ".csv":
            return cls.from_csv(path, **kwargs)
        raise DataError(f"a case table is a .csv file or a folder with images/ and labels/. "
                        f"Received: path={str(path)!r}")

    @classmethod
    def from_csv(cls, path: str | Path, *, patients: str = "column") -> CaseTable:
        """Read ``image,label,patient`` rows; ``patients="case"`` allows a CSV without
        patients (each case its own patient)."""
        path = Path(path)
        if patients not in ("column", "case"):
            raise UsageError(f"patients must be 'column' or 'case'. Received: "
                             f"patients={patients!r}")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"cannot read case table {path}: {exc}. "
                            f"Received: path={str(path)!r}") from None
        if not rows:
            raise DataError(f"case table {path} has no rows. Received: path={str(path)!r}")
        header = set(rows[0])
        if "image" not in header:
            raise DataError(f"case table {path} needs an 'image' column. Received: columns "
                            f"{sorted(header)}")
        if "patient" not in header and patients == "column":
            raise DataError(f"case table {path} has no 'patient' column: splits are grouped by "
                            f"patient so that no patient is in two splits; add the column, or "
                            f"pass patients='case' if every case is a different patient. "
                            f"Received: columns {sorted(header)}")
        cases = []
        for n, row in enumerate(rows, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise DataError(f"{path} line {n}: empty image. Received: {row}")
            label = (row.get("label") or "").strip()
            image_path = (path.parent / image)
            case_id = (row.get("case") or "").strip() or case_id_of(image_path)
            patient = (row.get("patient") or "").strip() if patients == "column" else case_id
            if not patient:
                raise DataError(f"{path} line {n}: empty patient. Received: {row}")
            cases.append(Case(case_id, image_path, (path.parent / label) if label else None,
                              patient))
        return cls(cases)

    @classmethod
    def from_folder(cls, folder: str | Path, *, patient_pattern: str | None = None) -> CaseTable:
        """``images/`` + ``labels/`` (or ``imagesTr/`` + ``labelsTr/``) matched by case id."""
        folder = Path(folder)
        images_dir = next((folder / n for n in ("images", "imagesTr") if (folder / n).is_dir()),
                          None)
        if images_dir is None:
            raise DataError(f"{folder} has no images/ (or imagesTr/) folder. "
                            f"Received: path={str(folder)!r}")
        labels_dir = next((folder / n for n in ("labels", "labelsTr") if (folder / n).is_dir()),
                          None)
        images = {case_id_of(p): p for p in sorted(images_dir.iterdir())
                  if not p.name.startswith(".")}
        labels = {} if labels_dir is None else {
            case_id_of(p): p for p in sorted(labels_dir.iterdir()) if not p.name.startswith(".")}
        orphans = sorted(set(labels) - set(images))
        if orphans:
            raise DataError(f"{len(orphans)} label(s) in {labels_dir} have no image, e.g. "
                            f"{orphans[0]!r}. Received: {len(images)} images")
        mapping = cls._patient_map(folder, patient_pattern, list(images))
        return cls([Case(cid, images[cid], labels.get(cid), mapping[cid]) for cid in images])

    @staticmethod
    def _patient_map(folder: Path, pattern: str | None, ids: list[str]) -> dict[str, str]:
        table = folder / "patients.csv"
        if table.is_file():
            with open(table, newline="", encoding="utf-8") as f:
                rows = {r["case"].strip(): r["patient"].strip() for r in csv.DictReader(f)
                        if r.get("case") and r.get("patient")}
            missing = [i for i in ids if i not in rows]
            if missing:
                raise DataError(f"{table} has no patient for {len(missing)} case(s), e.g. "
                                f"{missing[0]!r}. Received: {len(rows)} rows")
            return {i: rows[i] for i in ids}
        if pattern is None:
            return {i: i for i in ids}
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"patient_pattern is not a regular expression ({exc}). "
                             f"Received: patient_pattern={pattern!r}") from None
        out = {}
        for i in ids:
            m = regex.search(i)
            if m is None:
                raise DataError(f"patient_pattern does not match case {i!r}. "
                                f"Received: patient_pattern={pattern!r}")
            out[i] = m.group(1) if m.groups() else m.group(0)
        return out

    # --- access
    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, index):
        return self.cases[index]

    @property
    def patients(self) -> list[str]:
        """Distinct patients in first-seen order."""
        return list(dict.fromkeys(c.patient for c in self.cases))

    def subset(self, indices) -> CaseTable:
        return CaseTable([self.cases[int(i)] for i in indices])

    def write_csv(self, path: str | Path) -> Path:
        """Write ``case,image,label,patient`` (paths relative to the CSV's folder if possible)."""
        import io
        import os

        from visionsuite.files import write_bytes_atomic

        path = Path(path)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["case", "image", "label", "patient"])

        def rel(p: Path | None) -> str:
            if p is None:
                return ""
            try:
                return os.path.relpath(p.resolve(), path.parent.resolve())
            except ValueError:
                return str(p)

        for c in self.cases:
            writer.writerow([c.case_id, rel(c.image), rel(c.label), c.patient])
        return write_bytes_atomic(path, buf.getvalue().encode())

    # --- splits
    def split(self, val: float = 0.2, test: float = 0.0, seed: int = 0) -> dict[str, CaseTable]:
        """Patient-grouped ``{"train", "val", "test"}`` tables (``test`` only when > 0).

        ``val`` and ``test`` are fractions of the patients (at least one patient each when > 0).
        """
        from sklearn.model_selection import GroupShuffleSplit

        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise UsageError(f"val and test are fractions with val + test < 1. "
                             f"Received: val={val}, test={test}")
        groups = np.array([c.patient for c in self.cases])
        n_patients = len(set(groups))
        need = 1 + (val > 0) + (test > 0)
        if n_patients < need:
            raise DataError(f"{n_patients} patient(s) cannot make {need} patient-disjoint splits. "
                            f"Received: val={val}, test={test}")
        index = np.arange(len(self.cases))
        out: dict[str, CaseTable] = {}
        rest = index
        if test > 0:
            n_test = max(1, int(round(test * n_patients)))
            gss = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
            keep, hold = next(gss.split(rest, groups=groups[rest]))
            out["test"] = self.subset(rest[hold])
            rest = rest[keep]
        if val > 0:
            n_val = max(1, int(round(val * n_patients)))
            n_val = min(n_val, len(set(groups[rest])) - 1)
            gss = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed + 1)
            keep, hold = next(gss.split(rest, groups=groups[rest]))
            out["val"] = self.subset(rest[hold])
            rest = rest[keep]
        out["train"] = self.subset(rest)
        return {k: out[k] for k in ("train", "val", "test") if k in out}

    def kfold(self, k: int = 5, seed: int = 0) -> list[tuple[CaseTable, CaseTable]]:
        """``k`` patient-grouped ``(train, val)`` folds; every patient is in exactly one val."""
        from sklearn.model_selection import GroupKFold

        groups = np.array([c.patient for c in self.cases])
        n_patients = len(set(groups))
        if k < 2 or k > n_patients:
            raise UsageError(f"k-fold needs 2 <= k <= the number of patients ({n_patients}). "
                             f"Received: k={k}")
        folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
        index = np.arange(len(self.cases))
        return [(self.subset(tr), self.subset(va)) for tr, va in folds.split(index, groups=groups)]
