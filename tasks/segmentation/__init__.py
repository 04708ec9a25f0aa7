"""Built-in semantic segmentation task (entry point ``visionsuite.tasks: segmentation``)."""

from visionsuite_tasks.segmentation.task import (
    SegmentationConfig,
    SegmentationPrediction,
    SegmentationTask,
)

__all__ = ["SegmentationConfig", "SegmentationPrediction", "SegmentationTask"]
