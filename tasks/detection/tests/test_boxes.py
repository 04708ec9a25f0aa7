"""Box formats, IoU matrix and letterboxing."""

import numpy as np
import pytest

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.boxes import (
    BOX_FORMATS,
    clip_boxes,
    convert_boxes,
    iou_matrix,
    letterbox,
    letterbox_geometry,
)


def _random_xyxy(rng, n, w=640, h=480):
    xy = rng.uniform(0, [w - 20, h - 20], size=(n, 2))
    wh = rng.uniform(1, 200, size=(n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).astype(np.float32)


def test_known_values_of_each_format():
    xyxy = np.array([[10, 20, 50, 100]], np.float32)
    np.testing.assert_allclose(convert_boxes(xyxy, "xyxy", "xywh"), [[10, 20, 40, 80]])
    np.testing.assert_allclose(convert_boxes(xyxy, "xyxy", "cxcywh"), [[30, 60, 40, 80]])
    np.testing.assert_allclose(convert_boxes(xyxy, "xyxy", "yolo", image_size=(200, 100)),
                               [[0.3, 0.3, 0.4, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("fmt", BOX_FORMATS)
def test_round_trip_through_every_format(fmt):
    boxes = _random_xyxy(np.random.default_rng(0), 50)
    there = convert_boxes(boxes, "xyxy", fmt, image_size=(480, 640))
    back = convert_boxes(there, fmt, "xyxy", image_size=(480, 640))
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_bad_format_and_missing_image_size_are_one_line_errors():
    with pytest.raises(UsageError, match="Received: dst='xyz'"):
        convert_boxes(np.zeros((1, 4)), "xyxy", "xyz")
    with pytest.raises(UsageError, match="image_size"):
        convert_boxes(np.zeros((1, 4)), "yolo", "xyxy")
    with pytest.raises(UsageError, match=r"\(N, 4\)"):
        convert_boxes(np.zeros((3, 5)), "xyxy", "xywh")


def test_iou_matrix_equals_a_brute_force_loop():
    rng = np.random.default_rng(1)
    a, b = _random_xyxy(rng, 30), _random_xyxy(rng, 20)
    a[0] = b[0]  # an identical pair
    ref = np.zeros((30, 20))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            ref[i, j] = inter / union
    got = iou_matrix(a, b)
    assert got.shape == (30, 20)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert got[0, 0] == pytest.approx(1.0)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 20)
    assert iou_matrix(np.array([[5, 5, 5, 9]]), b).max() == 0  # empty box


def test_clip_boxes():
    out = clip_boxes([[-5, -2, 700, 300]], (480, 640))
    np.testing.assert_allclose(out, [[0, 0, 640, 300]])


@pytest.mark.parametrize("src_hw,size,auto", [((576, 768), (416, 416), False),
                                               ((480, 640), 640, True),
                                               ((300, 200), (320, 320), False),
                                               ((100, 700), (250, 640), False)])
def test_letterbox_keeps_aspect_and_maps_boxes_back(src_hw, size, auto):
    h, w = src_hw
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = int(w * 0.2), int(h * 0.3), int(w * 0.6), int(h * 0.9)
    image[y1:y2, x1:x2] = 255
    out, lb = letterbox(image, size, divisor=32, auto=auto)
    assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0
    assert out.shape[:2] == lb.input_size
    if not auto:
        sz = (size, size) if isinstance(size, int) else size
        assert out.shape[:2] == tuple(-(-s // 32) * 32 for s in sz)
    # the white block, found in the letterboxed image, maps back onto the source block
    ys, xs = np.nonzero(out[..., 0] > 128)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = lb.to_source(found)
    np.testing.assert_allclose(back, [[x1, y1, x2, y2]], atol=1.5 / lb.scale + 0.5)
    np.testing.assert_allclose(lb.to_input(lb.to_source(found, clip=False)), found, atol=1e-3)
    # padding is grey, the resized content keeps the aspect ratio
    content_w, content_h = out.shape[1] - 2 * lb.pad_x, out.shape[0] - 2 * lb.pad_y
    assert abs(content_w / content_h - w / h) < 0.05 * w / h


def test_letterbox_geometry_round_trip_via_dict():
    lb = letterbox_geometry((576, 768), 416)
    assert type(lb).from_dict(lb.to_dict()) == lb
    with pytest.raises(UsageError, match="Received"):
        letterbox_geometry((0, 5), 416)
