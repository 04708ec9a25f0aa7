"""Every installed task plugin (built-in or outside) passes the task contract."""

import pytest

from visionsuite.plugins import task_names
from visionsuite.task import Task
from visionsuite.testing import ConformanceError, check_task


@pytest.mark.parametrize("name", task_names())
def test_installed_task_follows_the_contract(name):
    check_task(name)


def test_conformance_catches_a_task_that_draws_in_place():
    from visionsuite_tasks.classification import ClassificationTask

    class InPlace(ClassificationTask):
        def render(self, image_bgr, prediction):
            image_bgr[:] = 0
            return image_bgr

    with pytest.raises(ConformanceError, match="in place"):
        check_task(InPlace)


def test_conformance_rejects_a_non_task():
    with pytest.raises(ConformanceError, match="must subclass"):
        check_task(Task.__init__.__class__)


def test_the_out_of_tree_toy_plugin_passes_the_conformance_check(toy_installed, tmp_path):
    result = check_task("toy", workdir=tmp_path)
    assert result["predictions"] >= 1 and "accuracy" in result["metrics"]
