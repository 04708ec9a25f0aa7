"""From frames to model inputs and from model outputs to detections in source pixels.

    >>> x, meta = letterbox_input(frame_rgb, (416, 416))           # float32 (416, 416, 3)
    >>> outputs = runtime(x[None])                                # {"boxes", "scores"}
    >>> dets = detections_from_outputs({k: v[0] for k, v in outputs.items()}, meta,
    ...                                conf=0.25, iou=0.45)
    >>> records = detection_records(dets, class_names, track_ids)

Every detector in visionsuite (trained or the pretrained NanoDet) outputs ``boxes`` ``(A, 4)``
xyxy in *input* pixels and ``scores`` ``(A, C)`` per item; the letterbox geometry kept in
``meta["letterbox"]`` maps the kept boxes back to the source image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionsuite.errors import UsageError, did_you_mean
from visionsuite_tasks.detection.boxes import Letterbox, letterbox
from visionsuite_tasks.detection.nms import Detections, non_max_suppression

# (int) grey of the letterbox padding
PAD_VALUE = 114


def letterbox_input(image_rgb: np.ndarray, size, *, divisor: int = 32,
                    pad_value: int = PAD_VALUE) -> tuple[np.ndarray, dict]:
    """Letterbox an RGB uint8 image to ``size`` (``(h, w)`` or a side); returns the float32
    model input in ``[0, 255]`` and ``meta`` with ``height``, ``width`` and ``letterbox``
    (a :class:`~visionsuite_tasks.detection.boxes.Letterbox` as a dict)."""
    x, lb = letterbox(image_rgb, size, divisor=divisor, pad_value=pad_value)
    h, w = image_rgb.shape[:2]
    return x.astype(np.float32), {"height": h, "width": w, "letterbox": lb.to_dict()}


def detections_from_outputs(outputs: dict, meta: dict, *, conf: float = 0.25,
                            iou: float = 0.45, max_det: int = 300,
                            classes: Sequence[int] | None = None,
                            agnostic: bool = False) -> Detections:
    """NMS over one item's ``{"boxes": (A, 4), "scores": (A, C)}`` (no batch axis) and the
    kept boxes mapped to source pixels (clipped to the image)."""
    if "boxes" not in outputs or "scores" not in outputs:
        raise UsageError(f"a detector must output 'boxes' and 'scores'. Received: "
                         f"{sorted(outputs)}")
    dets = non_max_suppression(outputs["boxes"], outputs["scores"], conf=conf, iou=iou,
                               max_det=max_det, classes=classes, agnostic=agnostic)
    if "letterbox" in meta:
        dets.boxes = Letterbox.from_dict(meta["letterbox"]).to_source(dets.boxes)
    return dets


def parse_class_filter(value, class_names: Sequence[str]) -> list[int] | None:
    """Class indices from ``"person,car"`` / ``["person", 2]`` (names or indices); None for
    an empty value. Unknown names raise :class:`UsageError` with suggestions."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = list(class_names)
    out = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if isinstance(item, str) and item in names:
            out.append(names.index(item))
        elif isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.isdigit()):
            k = int(item)
            if not 0 <= k < len(names):
                raise UsageError(f"class index out of range [0, {len(names)}). Received: "
                                 f"classes={value!r}")
            out.append(k)
        else:
            raise UsageError(f"unknown class {item!r}.{did_you_mean(str(item), names)} "
                             f"Received: classes={value!r}")
    return sorted(set(out))


def detection_records(dets: Detections, class_names: Sequence[str], track_ids=None) -> list:
    """JSON-ready ``[{"box": [x1, y1, x2, y2], "score", "class", "track_id"?}]`` (source
    pixels, 2 decimals; ``track_id`` only for tracked detections)."""
    out = []
    for k in range(len(dets)):
        cls = int(dets.classes[k])
        rec = {"box": [round(float(v), 2) for v in dets.boxes[k]],
               "score": round(float(dets.scores[k]), 4),
               "class": class_names[cls] if cls < len(class_names) else str(cls)}
        if track_ids is not None and int(track_ids[k]) >= 0:
            rec["track_id"] = int(track_ids[k])
        out.append(rec)
    return out
