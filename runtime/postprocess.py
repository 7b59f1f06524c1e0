"""Unmolding: network outputs of one image -> :class:`Detections` in original pixels.

Shapes: K fixed detection slots, N = num_detections <= K, M mask size (28),
H, W molded size, h, w original size.

The arithmetic follows Matterport's ``unmold_detections`` (including its float32 /
float64 mix, so rounding to pixels agrees) and ``unmold_mask``: each MxM mask is
resized to its box only and thresholded (see runtime.masks for the exact and the fast
paste); nothing full-size is resized.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from runtime.masks import MASK_THRESHOLD, InstanceMasks, check_paste, paste_exact
from runtime.molding import denorm_boxes, norm_boxes
from runtime.results import Detections

MASK_MODES = ("full", "lazy")


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
    pixels into the bool [h,w] view ``full`` (Matterport's unmold_mask, bit for bit)."""
    y1, x1, y2, x2 = (int(v) for v in box)
    paste_exact(mask, y2 - y1, x2 - x1, out=full[y1:y2, x1:x2])


def unmold_detections(
    num_detections: int,
    boxes: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    masks: np.ndarray,
    window: Tuple[int, int, int, int],
    molded_shape: Tuple[int, int],
    original_shape: Tuple[int, int],
    mask_mode: str = "full",
    paste: str = "exact",
    mask_threshold: float = MASK_THRESHOLD,
    score_threshold: Optional[float] = None,
) -> Detections:
    """Turn one image's fixed-size outputs into :class:`Detections`.

    boxes: float32 [K,4] normalised (y1,x1,y2,x2) in the molded image.
    class_ids: int [K]; scores: float32 [K]; masks: float32 [K,M,M] probabilities of
    each detection's own class. Only the first ``num_detections`` slots are read.
    Detections whose box rounds to zero area are dropped, as in Matterport, and so are
    those scoring below ``score_threshold`` (None: keep what the model kept).

    mask_mode "full": masks is a bool [h,w,N] array (Matterport's result); "lazy": an
    :class:`runtime.masks.InstanceMasks` that pastes each instance into its box when it
    is first read. paste: "exact" (Matterport's, bit for bit) or "fast" (runtime.masks).
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mask_mode!r}")
    check_paste(paste)
    count = int(num_detections)
    pixel_boxes = boxes_to_original(
        np.asarray(boxes[:count], dtype=np.float32), window, molded_shape, original_shape
    )
    scores = np.asarray(scores[:count], dtype=np.float32)
    keep = (pixel_boxes[:, 2] - pixel_boxes[:, 0]) * (pixel_boxes[:, 3] - pixel_boxes[:, 1]) > 0
    if score_threshold is not None:
        keep &= scores >= score_threshold
    rois = pixel_boxes[keep].astype(np.int32)
    instance_masks = InstanceMasks(np.asarray(masks[:count])[keep], rois, original_shape, mask_threshold, paste)
    return Detections(
        rois=rois,
        class_ids=np.asarray(class_ids[:count])[keep].astype(np.int32),
        scores=scores[keep],
        masks=instance_masks if mask_mode == "lazy" else instance_masks.full(),
    )
