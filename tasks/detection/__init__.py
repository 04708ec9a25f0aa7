"""Object detection: box utilities, dataset readers and converters (COCO JSON, YOLO txt,
Pascal VOC XML), NMS, COCO evaluation, tracking and counting, the pretrained NanoDet model."""
