"""Box formats, IoU and letterboxing.

Boxes are float arrays of shape ``(N, 4)``. The formats (the names every function takes):

* ``xyxy`` -- corners ``x1, y1, x2, y2`` in pixels (the format used inside visionsuite);
* ``xywh`` -- top-left corner plus width and height, in pixels (COCO JSON);
* ``cxcywh`` -- centre plus width and height, in pixels;
* ``yolo`` -- centre plus width and height divided by the image width / height (YOLO txt).

Pixel coordinates are continuous: a box covering pixel columns 0..9 is ``x1=0, x2=10``.

Example:
    >>> convert_boxes(np.array([[10, 20, 30, 40]]), "xywh", "xyxy")
    array([[10., 20., 40., 60.]], dtype=float32)
    >>> image, lb = letterbox(frame, (384, 640))      # keeps the aspect ratio, pads
    >>> boxes_src = lb.to_source(boxes_in_input_pixels)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from visionsuite.errors import UsageError

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yolo")


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise UsageError(f"{name} must have shape (N, 4). Received: shape={array.shape}")
    return array


def convert_boxes(boxes, src: str, dst: str, image_size: tuple[int, int] | None = None
                  ) -> np.ndarray:
    """Convert ``(N, 4)`` boxes from format ``src`` to ``dst`` (see :data:`BOX_FORMATS`).

    Args:
        boxes: array-like of shape ``(N, 4)``.
        src: format of ``boxes``.
        dst: wanted format.
        image_size: ``(height, width)`` of the image; needed when either format is ``yolo``.

    Returns:
        float32 array of shape ``(N, 4)``.
    """
    for arg, fmt in (("src", src), ("dst", dst)):
        if fmt not in BOX_FORMATS:
            raise UsageError(f"unknown box format {arg}={fmt!r}; choose from "
                             f"{', '.join(BOX_FORMATS)}. Received: {arg}={fmt!r}")
    if "yolo" in (src, dst) and image_size is None:
        raise UsageError(f"the yolo box format needs image_size=(height, width). "
                         f"Received: image_size=None")
    b = _as_boxes(boxes).astype(np.float64)
    if src == "xyxy":
        xyxy = b
    elif src == "xywh":
        xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    else:
        c = b
        if src == "yolo":
            h, w = image_size
            c = b * np.array([w, h, w, h], np.float64)
        xyxy = np.concatenate([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], axis=1)
    if dst == "xyxy":
        out = xyxy
    elif dst == "xywh":
        out = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    else:
        out = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        if dst == "yolo":
            h, w = image_size
            out = out / np.array([w, h, w, h], np.float64)
    return out.astype(np.float32)


def box_area(boxes) -> np.ndarray:
    """Areas of ``(N, 4)`` xyxy boxes (0 for inverted boxes)."""
    b = _as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4),
    both xyxy; returns float32 ``(N, M)``. Empty boxes have IoU 0 with everything."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def clip_boxes(boxes, image_size: tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes to an image of ``(height, width)``."""
    h, w = image_size
    b = _as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    return b


def _round_up(value: float, divisor: int) -> int:
    return int(-(-int(round(value)) // divisor) * divisor)


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed: ``input = source * scale + (pad_x, pad_y)``.

    Args:
        scale: resize factor applied to the source image (same on both axes).
        pad_x: left padding in input pixels.
        pad_y: top padding in input pixels.
        source_size: ``(height, width)`` of the source image.
        input_size: ``(height, width)`` of the letterboxed image.
    """

    scale: float
    pad_x: float
    pad_y: float
    source_size: tuple[int, int]
    input_size: tuple[int, int]

    def to_source(self, boxes, clip: bool = True) -> np.ndarray:
        """Map xyxy boxes in input pixels back to source-image pixels (clipped to it)."""
        b = _as_boxes(boxes).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) / self.scale
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) / self.scale
        return clip_boxes(b, self.source_size) if clip else b

    def to_input(self, boxes) -> np.ndarray:
        """Map xyxy boxes in source pixels to input pixels."""
        b = _as_boxes(boxes).copy()
        b[:, [0, 2]] = b[:, [0, 2]] * self.scale + self.pad_x
        b[:, [1, 3]] = b[:, [1, 3]] * self.scale + self.pad_y
        return b

    def to_dict(self) -> dict:
        return {"scale": self.scale, "pad_x": self.pad_x, "pad_y": self.pad_y,
                "source_size": list(self.source_size), "input_size": list(self.input_size)}

    @classmethod
    def from_dict(cls, d: dict) -> "Letterbox":
        return cls(float(d["scale"]), float(d["pad_x"]), float(d["pad_y"]),
                   tuple(int(v) for v in d["source_size"]),
                   tuple(int(v) for v in d["input_size"]))


def letterbox_geometry(source_size: tuple[int, int], size, *, divisor: int = 32,
                       auto: bool = False, scaleup: bool = True) -> Letterbox:
    """The :class:`Letterbox` that :func:`letterbox` applies (without touching pixels).

    Args:
        source_size: ``(height, width)`` of the source image.
        size: the target ``(height, width)``, or one int for a square target. Each side is
            rounded up to a multiple of ``divisor``.
        divisor: the model's stride divisibility (32 for a P3-P5 detector).
        auto: when true, pad only up to the next multiple of ``divisor`` (rectangular input
            of at most ``size``, less padding); otherwise the input is exactly ``size``.
        scaleup: allow enlarging small images (otherwise the scale is at most 1).
    """
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if len(size) != 2 or min(size) <= 0 or divisor <= 0:
        raise UsageError(f"letterbox size must be positive (height, width) and divisor > 0. "
                         f"Received: size={size}, divisor={divisor}")
    src_h, src_w = int(source_size[0]), int(source_size[1])
    if src_h <= 0 or src_w <= 0:
        raise UsageError(f"source image must be non-empty. Received: source_size={source_size}")
    out_h, out_w = _round_up(size[0], divisor), _round_up(size[1], divisor)
    scale = min(out_h / src_h, out_w / src_w)
    if not scaleup:
        scale = min(scale, 1.0)
    new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
    if auto:
        out_h, out_w = _round_up(new_h, divisor), _round_up(new_w, divisor)
    pad_x, pad_y = (out_w - new_w) // 2, (out_h - new_h) // 2
    # the exact per-axis factor of the resize is new/src; with rounding it differs from
    # `scale` by < 0.5 px over the image, so one factor is kept (boxes map both ways)
    return Letterbox(float(scale), float(pad_x), float(pad_y), (src_h, src_w), (out_h, out_w))


def letterbox(image: np.ndarray, size, *, divisor: int = 32, auto: bool = False,
              scaleup: bool = True, pad_value: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` keeping its aspect ratio and pad it to ``size`` (sides multiples of
    ``divisor``), centred. Returns the new image and the :class:`Letterbox` that maps boxes
    between the two (``lb.to_source(boxes)``). See :func:`letterbox_geometry` for the args."""
    import cv2

    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise UsageError(f"letterbox expects an (H, W[, C]) image. Received: shape={image.shape}")
    lb = letterbox_geometry(image.shape[:2], size, divisor=divisor, auto=auto, scaleup=scaleup)
    new_w = max(1, int(round(image.shape[1] * lb.scale)))
    new_h = max(1, int(round(image.shape[0] * lb.scale)))
    if (new_h, new_w) != image.shape[:2]:
        interp = cv2.INTER_AREA if lb.scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    else:
        resized = image
    out = np.full((*lb.input_size, *image.shape[2:]), pad_value, dtype=image.dtype)
    y, x = int(lb.pad_y), int(lb.pad_x)
    out[y:y + new_h, x:x + new_w] = resized.reshape(new_h, new_w, *image.shape[2:])
    return out, lb
