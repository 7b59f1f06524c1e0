"""Drawing: masks tinted in their class colour inside the box only, stable colours, RGB and BGR."""

import numpy as np

from runtime.draw import class_color, draw_detections
from runtime.masks import InstanceMasks
from runtime.results import Detections


def detections(lazy):
    rois = np.array([[10, 20, 50, 70], [60, 60, 90, 120]], np.int32)
    probs = np.zeros((2, 28, 28), np.float32)
    probs[:, 7:21, 7:21] = 1.0  # the middle half of each box
    masks = InstanceMasks(probs, rois, (100, 130))
    return Detections(rois, np.array([1, 2], np.int32), np.array([0.9, 0.8], np.float32),
                      masks if lazy else np.asarray(masks))


def test_masks_are_tinted_inside_only():
    frame = np.full((100, 130, 3), 50, np.uint8)
    drawn = draw_detections(frame, detections(lazy=True), ["BG", "cat", "dog"], labels=False, alpha=0.5)
    assert (frame == 50).all()  # a copy unless in_place
    inside = drawn[30, 45].astype(int)  # the middle of the first box: its mask
    expected = (np.array(class_color(1)) * 0.5 + 50 * 0.5).round()
    assert np.abs(inside - expected).max() <= 1
    assert (drawn[15:20, 25:30] == 50).all()  # inside the box, outside the mask
    assert (drawn[0:5, 0:10] == 50).all() and (drawn[95:, 0:50] == 50).all()  # outside every box
    assert (drawn[10, 30:60] != 50).any()  # the box's top edge


def test_lazy_and_full_masks_draw_the_same():
    frame = np.random.default_rng(0).integers(0, 255, (100, 130, 3), dtype=np.uint8)
    names = ["BG", "cat", "dog"]
    np.testing.assert_array_equal(draw_detections(frame, detections(True), names),
                                  draw_detections(frame, detections(False), names))


def test_colours_are_stable_distinct_and_follow_channel_order():
    colours = [class_color(i) for i in range(1, 81)]
    assert colours == [class_color(i) for i in range(1, 81)]
    assert len(set(colours)) == 80
    assert class_color(5, bgr=True) == class_color(5)[::-1]
    frame = np.zeros((100, 130, 3), np.uint8)
    rgb = draw_detections(frame, detections(True), labels=False)
    bgr = draw_detections(frame, detections(True), labels=False, bgr=True)
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])


def test_labels_name_the_class(tmp_path):
    frame = np.full((100, 130, 3), 255, np.uint8)
    plain = draw_detections(frame, detections(True), ["BG", "cat", "dog"], labels=False)
    labelled = draw_detections(frame, detections(True), ["BG", "cat", "dog"])
    assert (labelled != plain).any(axis=2).sum() > 100  # text strips were added
