"""Unmolding: network outputs of one image -> :class:`Detections` in original pixels.

Shapes: K fixed detection slots, N = num_detections <= K, M mask size (28),
H, W molded size, h, w original size.

The arithmetic follows Matterport's ``unmold_detections`` (including its float32 /
float64 mix, so rounding to pixels agrees) and ``unmold_mask``: each MxM mask is
resized to its box only, thresholded at 0.5 and pasted; nothing full-size is resized.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from runtime.molding import denorm_boxes, norm_boxes
from runtime.resize import resize_bilinear
from runtime.results import Detections

MASK_THRESHOLD = 0.5


def boxes_in_window(boxes: np.ndarray, window: Tuple[int, int, int, int],
                    molded_shape: Tuple[int, int]) -> np.ndarray:
    """Normalised float32 [N,4] boxes in the molded image -> normalised float64 [N,4]
    boxes in the original image (the window of the real image)."""
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window), molded_shape)
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return np.divide(boxes - shift, scale)


def boxes_to_original(
    boxes: np.ndarray,
    window: Tuple[int, int, int, int],
    molded_shape: Tuple[int, int],
    original_shape: Tuple[int, int],
) -> np.ndarray:
    """Normalised float32 [N,4] boxes in the molded image -> int32 pixel boxes in the
    original image (through the window of the real image)."""
    return denorm_boxes(boxes_in_window(boxes, window, molded_shape), original_shape)


def paste_mask(mask: np.ndarray, box: np.ndarray, full: np.ndarray) -> None:
    """Resize float [M,M] ``mask`` to int ``box`` (y1,x1,y2,x2) and write the >= 0.5
    pixels into the bool [h,w] view ``full`` (which must be all False)."""
    y1, x1, y2, x2 = (int(v) for v in box)
    resized = resize_bilinear(mask, (y2 - y1, x2 - x1))
    full[y1:y2, x1:x2] = resized >= MASK_THRESHOLD


def unmold_detections(
    num_detections: int,
    boxes: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    masks: np.ndarray,
    window: Tuple[int, int, int, int],
    molded_shape: Tuple[int, int],
    original_shape: Tuple[int, int],
) -> Detections:
    """Turn one image's fixed-size outputs into :class:`Detections`.

    boxes: float32 [K,4] normalised (y1,x1,y2,x2) in the molded image.
    class_ids: int [K]; scores: float32 [K]; masks: float32 [K,M,M] probabilities of
    each detection's own class. Only the first ``num_detections`` slots are read.
    Detections whose box rounds to zero area are dropped, as in Matterport.
    """
    count = int(num_detections)
    pixel_boxes = boxes_to_original(
        np.asarray(boxes[:count], dtype=np.float32), window, molded_shape, original_shape
    )
    keep = (pixel_boxes[:, 2] - pixel_boxes[:, 0]) * (pixel_boxes[:, 3] - pixel_boxes[:, 1]) > 0
    pixel_boxes = pixel_boxes[keep]
    height, width = original_shape
    full_masks = np.zeros((len(pixel_boxes), height, width), dtype=bool)
    for index, (mask, box) in enumerate(zip(np.asarray(masks[:count])[keep], pixel_boxes)):
        paste_mask(mask, box, full_masks[index])
    return Detections(
        rois=pixel_boxes.astype(np.int32),
        class_ids=np.asarray(class_ids[:count])[keep].astype(np.int32),
        scores=np.asarray(scores[:count], dtype=np.float32)[keep],
        masks=full_masks.transpose(1, 2, 0),  # [h,w,N] view: each instance stays contiguous
    )
