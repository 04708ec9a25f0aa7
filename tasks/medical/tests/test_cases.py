"""Case tables and patient-grouped splits: no patient is ever in two splits."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from visionsuite.errors import DataError, UsageError
from visionsuite_tasks.medical.cases import CaseTable, case_id_of
from visionsuite_tasks.medical.readers import read_case


@pytest.fixture
def csv_table(tmp_path, nibabel_data):
    """27 real NIfTI cases (copies of nibabel's anatomical.nii) of 11 patients, 1-4 scans each."""
    src = nibabel_data("anatomical.nii")
    (tmp_path / "img").mkdir()
    rows = ["image,label,patient"]
    counts = [1, 2, 3, 4, 1, 2, 3, 4, 3, 2, 2]
    for p, n in enumerate(counts):
        for s in range(n):
            name = f"p{p:02d}_s{s}.nii"
            shutil.copy(src, tmp_path / "img" / name)
            label = f"img/{name}" if s == 0 else ""  # the image as its own 'label': same grid
            rows.append(f"img/{name},{label},patient{p:02d}")
    path = tmp_path / "cases.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _patients(table):
    return {c.patient for c in table}


def test_csv_reads_paths_relative_to_the_csv(csv_table):
    table = CaseTable.read(csv_table)
    assert len(table) == 27 and len(table.patients) == 11
    first = table[0]
    assert first.image == csv_table.parent / "img" / "p00_s0.nii" and first.label is not None
    assert table[2].label is None and first.case_id == "p00_s0"
    image, label = read_case(first.image, first.label)
    assert image.same_geometry(label)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_never_shares_a_patient(csv_table, seed):
    table = CaseTable.read(csv_table)
    parts = table.split(val=0.2, test=0.2, seed=seed)
    assert set(parts) == {"train", "val", "test"}
    pats = {k: _patients(v) for k, v in parts.items()}
    assert not pats["train"] & pats["val"] and not pats["train"] & pats["test"]
    assert not pats["val"] & pats["test"]
    assert sum(len(v) for v in parts.values()) == len(table)
    assert len(pats["val"]) == 2 and len(pats["test"]) == 2  # round(0.2 * 11)
    ids = sorted(c.case_id for v in parts.values() for c in v)
    assert ids == sorted(c.case_id for c in table)


def test_kfold_puts_every_patient_in_exactly_one_validation_fold(csv_table):
    table = CaseTable.read(csv_table)
    folds = table.kfold(5, seed=0)
    assert len(folds) == 5
    seen = []
    for train, val in folds:
        assert not _patients(train) & _patients(val)
        assert len(train) + len(val) == len(table)
        seen.extend(_patients(val))
    assert sorted(seen) == sorted(table.patients)
    other = table.kfold(5, seed=1)
    assert [sorted(_patients(v)) for _, v in other] != [sorted(_patients(v)) for _, v in folds]


def test_csv_without_patients_is_refused_unless_declared(tmp_path, nibabel_data):
    shutil.copy(nibabel_data("anatomical.nii"), tmp_path / "a.nii")
    shutil.copy(nibabel_data("anatomical.nii"), tmp_path / "b.nii")
    path = tmp_path / "cases.csv"
    path.write_text("image,label\na.nii,\nb.nii,\n")
    with pytest.raises(DataError, match="no 'patient' column.*patients='case'"):
        CaseTable.read(path)
    table = CaseTable.from_csv(path, patients="case")
    assert table.patients == ["a", "b"]
    path.write_text("image,patient\na.nii,P1\nmissing.nii,P2\n")
    with pytest.raises(DataError, match="1 case file.*do not exist.*missing.nii"):
        CaseTable.read(path)
    with pytest.raises(DataError, match="cannot make 3 patient-disjoint splits"):
        table.split(val=0.3, test=0.3)
    with pytest.raises(UsageError, match="2 <= k <= the number of patients"):
        table.kfold(3)


def test_folder_convention_with_patient_pattern_and_patients_csv(tmp_path, nibabel_data):
    src = nibabel_data("anatomical.nii")
    for d in ("imagesTr", "labelsTr"):
        (tmp_path / d).mkdir()
    for case in ("sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1", "sub-03_ses-1"):
        shutil.copy(src, tmp_path / "imagesTr" / f"{case}_0000.nii")
        shutil.copy(src, tmp_path / "labelsTr" / f"{case}.nii")
    table = CaseTable.read(tmp_path, patient_pattern=r"^(sub-\d+)")
    assert [c.case_id for c in table] == ["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1",
                                          "sub-03_ses-1"]
    assert table.patients == ["sub-01", "sub-02", "sub-03"]
    assert all(c.label is not None for c in table)
    for seed in range(3):
        parts = table.split(val=0.34, seed=seed)
        assert not _patients(parts["train"]) & _patients(parts["val"])
    (tmp_path / "patients.csv").write_text(
        "case,patient\nsub-01_ses-1,A\nsub-01_ses-2,B\nsub-02_ses-1,A\nsub-03_ses-1,C\n")
    assert CaseTable.read(tmp_path).patients == ["A", "B", "C"]
    out = table.write_csv(tmp_path / "out" / "cases.csv")
    again = CaseTable.read(out)
    assert [(c.image.resolve(), c.patient) for c in again] == [
        (c.image.resolve(), c.patient) for c in table]
    shutil.copy(src, tmp_path / "labelsTr" / "sub-09_ses-1.nii")
    with pytest.raises(DataError, match="label.*have no image.*sub-09_ses-1"):
        CaseTable.read(tmp_path)


def test_case_ids_strip_suffixes_and_channels():
    from pathlib import Path

    assert case_id_of(Path("a/brain_017_0000.nii.gz")) == "brain_017"
    assert case_id_of(Path("a/ct_3.dcm")) == "ct_3" and case_id_of(Path("series_9")) == "series_9"


def test_synthetic_sphere_dataset_reads_as_a_case_table(tmp_path):
    from visionsuite_tasks.medical.synthetic import write_sphere_cases

    folder = write_sphere_cases(tmp_path / "tiny", 6, size=16)
    table = CaseTable.read(folder)
    assert len(table) == 6 and table.patients == ["patient_00", "patient_01", "patient_02"]
    image, label = read_case(table[0].image, table[0].label)
    assert image.shape == (16, 16, 16) and set(np.unique(label.array)) == {0, 1}
    assert image.orientation == "LPS" and image.spacing == pytest.approx((1.5, 1.5, 2.0))
    assert image.array[label.array == 1].mean() > image.array[label.array == 0].mean() + 50
