"""Unmolding: boxes back to original pixels, masks resized inside their box only."""

import numpy as np
import skimage.transform

from runtime.postprocess import unmold_detections


def test_unmold_maps_boxes_and_pastes_masks():
    # a 100x200 image molded to 128x128: scale 0.64, window (32, 0, 96, 128)
    window, molded_shape, original = (32, 0, 96, 128), (128, 128), (100, 200)
    boxes_px = np.array([[40, 10, 60, 50], [60, 10, 40, 50], [33, 0, 34, 1]], np.float32)
    boxes = (boxes_px - [0, 0, 1, 1]) / 127.0
    rng = np.random.default_rng(0)
    masks = rng.random((3, 28, 28)).astype(np.float32)
    result = unmold_detections(3, boxes.astype(np.float32), np.array([1, 2, 3]), np.array([0.9, 0.8, 0.7]),
                               masks, window, molded_shape, original)
    # y1: (40/127 - 32/127) / (63/127) * 99 = 12.57 -> 13; x2: 49/127 * 199 + 1 = 77.8 -> 78.
    # The flipped second box has negative area and is dropped, as in Matterport.
    assert result.rois.tolist() == [[13, 16, 43, 78], [2, 0, 3, 1]]
    assert result.class_ids.tolist() == [1, 3] and result.masks.shape == (100, 200, 2)
    y1, x1, y2, x2 = result.rois[0]
    expected = skimage.transform.resize(masks[0], (y2 - y1, x2 - x1), order=1, mode="constant",
                                        anti_aliasing=False) >= 0.5
    np.testing.assert_array_equal(result.masks[y1:y2, x1:x2, 0], expected)
    assert result.masks[:, :, 0].sum() == expected.sum()  # nothing outside the box
    assert result["rois"] is result.rois  # Matterport-style access


def test_no_detections():
    result = unmold_detections(0, np.zeros((5, 4), np.float32), np.zeros(5), np.zeros(5),
                               np.zeros((5, 28, 28), np.float32), (0, 0, 64, 64), (64, 64), (64, 64))
    assert len(result) == 0 and result.masks.shape == (64, 64, 0)
