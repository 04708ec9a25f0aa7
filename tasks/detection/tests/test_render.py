"""Drawing detections: boxes in their class / track colour, labels on a filled background."""

import numpy as np

from visionsuite_tasks.detection.render import (
    color_for,
    draw_detections,
    draw_line,
    draw_zone,
)


def test_boxes_and_labels_are_drawn_in_their_colours():
    frame = np.full((240, 320, 3), 128, np.uint8)
    boxes = np.array([[40, 60, 120, 200], [200, 10, 300, 100]], np.float32)
    out = draw_detections(frame, boxes, [0.9, 0.5], [0, 2], class_names=["person", "bike", "car"])
    assert (frame == 128).all()  # a copy by default
    # the left edge of box 0 has class 0's colour; box 1 (class 2) its own
    assert tuple(out[150, 40]) == color_for(0)
    assert tuple(out[60, 200]) == color_for(2)
    # the label of box 0 sits above it on a filled background of the same colour
    label = out[35:60, 40:100].reshape(-1, 3)
    assert (label == color_for(0)).all(axis=1).mean() > 0.4
    assert (np.abs(label.astype(int) - color_for(0)).sum(1) > 200).any()  # text pixels
    # inside the boxes nothing is painted
    assert (out[120:180, 60:100] == 128).all()


def test_track_ids_pick_the_colour_and_labels_stay_inside_the_frame():
    frame = np.zeros((100, 100, 3), np.uint8)
    out = draw_detections(frame, [[0, 0, 50, 50]], [0.8], [1], track_ids=[7])
    assert tuple(out[25, 0]) == color_for(7)
    assert out[:12, :40].any()  # the label moved inside the frame at the top edge


def test_line_and_zone_overlays():
    frame = np.zeros((100, 200, 3), np.uint8)
    out = draw_line(frame, (10, 50, 190, 50), {"in": 2, "out": 1}, copy=True)
    assert (out[50, 100] == 255).all() and not frame.any()
    zone = draw_zone(frame.copy(), [(20, 20), (80, 20), (80, 80), (20, 80)], occupancy=3)
    assert zone[50, 50].any() and not zone[50, 150].any()
