"""The task contract v2 holds boxes, clips and volumes: three toy tasks (and the fifteen-line
example of the contract's docstring) pass the whole conformance check."""

import pytest

from toy_tasks import TOY_TASKS
from visionsuite.testing import check_task


@pytest.mark.parametrize("cls", TOY_TASKS, ids=lambda c: c.name)
def test_toy_task_passes_the_conformance_check(cls, tmp_path):
    result = check_task(cls, workdir=tmp_path, classes=("a", "b"))
    assert result["predictions"] >= 1
    assert result["parity"]["max_abs_diff"] < 1e-3
