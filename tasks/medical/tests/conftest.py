"""Fixtures of the medical tests: real files shipped by pydicom and nibabel, synthetic series."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionsuite_tasks.medical.synthetic import write_dicom_series


@pytest.fixture(scope="session")
def nibabel_data():
    """``nibabel_data(name)``: a file of nibabel's own test data (tests/data/)."""
    import nibabel

    def get(name: str) -> Path:
        path = Path(nibabel.__file__).parent / "tests" / "data" / name
        assert path.is_file(), path
        return path

    return get


@pytest.fixture(scope="session")
def pydicom_data():
    """``pydicom_data(name)``: a file of pydicom's test data (``get_testdata_file``)."""
    from pydicom.data import get_testdata_file

    return lambda name: Path(get_testdata_file(name))


@pytest.fixture(scope="session")
def pydicom_series():
    """``pydicom_series(name)``: a folder of pydicom's ``dicomdirtests`` (real 16x16 series)."""
    from pydicom.data import get_testdata_file

    root = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    return lambda name: root / name


@pytest.fixture
def make_series(tmp_path):
    """``make_series(n, folder="series", **kw)`` -> (folder, expected volume); see
    :func:`visionsuite_tasks.medical.synthetic.write_dicom_series`."""

    def make(n=6, *, folder="series", **kw):
        out = tmp_path / folder
        return out, write_dicom_series(out, n, **kw)

    return make
