"""Training inputs of the detector: letterbox, 4-image mosaic, box-aware Albumentations.

    >>> loader = DetectionLoader(dataset, (256, 256), config, training=True, seed=0)
    >>> out = loader.transform(**loader.load(sample))   # image (256, 256, 3), bboxes, labels

Every image is first letterboxed to the model input exactly as at inference
(:func:`~visionsuite_tasks.detection.postprocess.letterbox_input`: aspect kept, grey padding,
centred), and its boxes mapped with it, so train and test geometry agree. When training:

1. **mosaic** (probability ``config.mosaic``): the sample and three others drawn at random are
   put in the four quadrants of a canvas twice the input size, and a window of the input size
   centred at a random point of the canvas' middle half is cut out: every window shows parts
   of several images at their own scale. A box keeps its clipped part when at least
   :data:`MIN_KEPT` of its area (and 2 px on each side) stays inside.
2. **Albumentations** (``A.Compose`` with ``bbox_params`` in ``pascal_voc`` = xyxy pixels):
   random scale ``1 +- 0.6 * augment`` and translation ``+- 0.2 * augment`` of the side
   (grey fill), horizontal flip (``hflip``), hue / saturation / brightness / contrast jitter
   (``color_jitter``); boxes follow, and a box keeping less than :data:`MIN_KEPT` of its
   area is dropped.

The random draws come from the seed the data pipeline hands the transform for each batch
(``set_random_seed``), so the same seed gives the same batches.
"""

from __future__ import annotations

import copy

import numpy as np

from visionsuite.errors import DataError

# (float) a box cut by the mosaic window or the affine keeps this share of its area, or goes
MIN_KEPT = 0.3
PAD_VALUE = 114


class DetectionLoader:
    """``load`` and ``transform`` for :func:`visionsuite.data.pipeline.make_tf_dataset`.

    Args:
        dataset: the task's :class:`~visionsuite.task.Dataset` (detection targets).
        size: ``(height, width)`` of the model input.
        config: the task config (``augment``, ``hflip``, ``color_jitter``, ``mosaic``).
        training: augment (otherwise ``transform`` is ``None``: letterbox only).
        seed: seeds the first batch's draws before the pipeline reseeds them.
    """

    def __init__(self, dataset, size, config, *, training: bool, seed: int = 0):
        self.samples = list(dataset.samples)
        self.size = (int(size[0]), int(size[1]))
        self.transform = (_Augment(self, config, seed) if training else None)

    def load(self, sample) -> dict:
        """``{"image": letterboxed RGB uint8, "bboxes": (N, 4) input pixels, "labels": (N,)}``."""
        from visionsuite.data.pipeline import load_rgb
        from visionsuite_tasks.detection.boxes import letterbox

        target = sample.target
        if not isinstance(target, dict) or "boxes" not in target or "classes" not in target:
            raise DataError(f"{sample.source or sample.image}: a detection sample needs a "
                            f"target with 'boxes' and 'classes'. Received: {type(target).__name__}")
        image, lb = letterbox(load_rgb(sample), self.size, pad_value=PAD_VALUE)
        boxes = np.asarray(target["boxes"], np.float32).reshape(-1, 4)
        boxes = lb.to_input(boxes) if len(boxes) else boxes
        h, w = self.size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        labels = np.asarray(target["classes"], np.int64).reshape(-1)
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        return {"image": image, "bboxes": boxes[ok], "labels": labels[ok]}


def keep_inside(boxes: np.ndarray, labels: np.ndarray, window) -> tuple[np.ndarray, np.ndarray]:
    """Boxes cut to ``window`` ``(x1, y1, x2, y2)`` and shifted to its origin; a box keeping
    less than :data:`MIN_KEPT` of its area or under 2 px a side is dropped."""
    x1, y1, x2, y2 = window
    if not len(boxes):
        return boxes.reshape(0, 4), labels.reshape(0)
    cut = boxes.copy()
    cut[:, [0, 2]] = cut[:, [0, 2]].clip(x1, x2)
    cut[:, [1, 3]] = cut[:, [1, 3]].clip(y1, y2)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cw, ch = cut[:, 2] - cut[:, 0], cut[:, 3] - cut[:, 1]
    ok = (cw >= 2) & (ch >= 2) & (cw * ch >= MIN_KEPT * np.maximum(area, 1e-6))
    cut = cut[ok] - np.array([x1, y1, x1, y1], np.float32)
    return cut, labels[ok]


class _Augment:
    """Mosaic + an Albumentations ``Compose``; reseeded per batch by the pipeline."""

    def __init__(self, loader: DetectionLoader, config, seed: int):
        import albumentations as A
        import cv2

        self.loader = loader
        self.mosaic = float(config.mosaic)
        a = float(config.augment)
        steps = []
        if a > 0:
            steps.append(A.Affine(scale=(1.0 - 0.6 * a, 1.0 + 0.6 * a),
                                  translate_percent=(-0.2 * a, 0.2 * a), fill=PAD_VALUE,
                                  border_mode=cv2.BORDER_CONSTANT, p=1.0))
        if config.hflip:
            steps.append(A.HorizontalFlip(p=0.5))
        if config.color_jitter:
            steps.append(A.HueSaturationValue(10, 40, 30, p=0.8))
            steps.append(A.RandomBrightnessContrast(0.2, 0.2, p=0.5))
        self.compose = A.Compose(steps, bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["labels"], min_visibility=MIN_KEPT,
            min_width=2, min_height=2, clip=True), seed=int(seed))
        self.rng = np.random.default_rng(seed)

    def __deepcopy__(self, memo):  # one per pipeline thread: share the samples, not copy them
        other = copy.copy(self)
        other.compose = copy.deepcopy(self.compose, memo)
        other.rng = np.random.default_rng()
        return other

    def set_random_seed(self, seed: int) -> None:
        self.compose.set_random_seed(int(seed))
        self.rng = np.random.default_rng(int(seed))

    def _mosaic(self, image, boxes, labels):
        h, w = self.loader.size
        canvas = np.full((2 * h, 2 * w, 3), PAD_VALUE, np.uint8)
        all_boxes, all_labels = [], []
        picks = self.rng.integers(0, len(self.loader.samples), 3)
        parts = [(image, boxes, labels)] + [
            tuple(self.loader.load(self.loader.samples[int(k)]).values()) for k in picks]
        order = self.rng.permutation(4)
        for slot, (img, b, lab) in zip(order, parts):
            oy, ox = (slot // 2) * h, (slot % 2) * w
            canvas[oy:oy + h, ox:ox + w] = img
            all_boxes.append(np.asarray(b, np.float32).reshape(-1, 4) + [ox, oy, ox, oy])
            all_labels.append(np.asarray(lab, np.int64).reshape(-1))
        cx = int(self.rng.integers(w // 2, w + w // 2 + 1))
        cy = int(self.rng.integers(h // 2, h + h // 2 + 1))
        x1, y1 = cx - w // 2, cy - h // 2
        window = (x1, y1, x1 + w, y1 + h)
        b, lab = keep_inside(np.concatenate(all_boxes), np.concatenate(all_labels), window)
        return np.ascontiguousarray(canvas[y1:y1 + h, x1:x1 + w]), b, lab

    def __call__(self, image, bboxes, labels):
        if self.mosaic > 0 and len(self.loader.samples) > 1 and self.rng.random() < self.mosaic:
            image, bboxes, labels = self._mosaic(image, bboxes, labels)
        out = self.compose(image=image, bboxes=np.asarray(bboxes, np.float32).reshape(-1, 4),
                           labels=np.asarray(labels, np.int64).reshape(-1))
        return {"image": out["image"], "bboxes": np.asarray(out["bboxes"], np.float32),
                "labels": np.asarray(out["labels"])}
