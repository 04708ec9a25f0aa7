"""Object detection: box utilities, dataset readers and converters (COCO JSON, YOLO txt,
Pascal VOC XML), NMS, COCO evaluation, tracking and counting, the pretrained NanoDet model."""


from visionsuite_tasks.detection.task import (
    DetectionConfig,
    DetectionPrediction,
    DetectionTask,
)

__all__ = ["DetectionConfig", "DetectionPrediction", "DetectionTask"]
