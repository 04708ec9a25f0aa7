"""Built-in classification task (entry point ``visionsuite.tasks: classification``)."""

from visionsuite_tasks.classification.task import (
    ClassificationConfig,
    ClassificationPrediction,
    ClassificationTask,
)

__all__ = ["ClassificationConfig", "ClassificationPrediction", "ClassificationTask"]
