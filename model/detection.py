"""Matterport's DetectionLayer: classified RoIs -> final detections (inference).

Shapes: B batch, R RoIs, C NUM_CLASSES, K DETECTION_MAX_INSTANCES.
Boxes are normalised (y1, x1, y2, x2) in the molded image.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from model.boxes import apply_box_deltas, clip_boxes
from model.ops.nms import nms


class DetectionBoxes(NamedTuple):
    """num_detections int64 [B]; boxes float [B,K,4]; scores float [B,K];
    class_ids int64 [B,K]. Sorted by score, zero-padded after num_detections."""

    num_detections: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor


def refine_detections(
    rois: torch.Tensor,
    probs: torch.Tensor,
    deltas: torch.Tensor,
    windows: torch.Tensor,
    std_dev: Sequence[float],
    min_confidence: float,
    nms_threshold: float,
    max_instances: int,
) -> DetectionBoxes:
    """Pick each RoI's best class, refine its box, drop background and low scores,
    per-class NMS, keep the top ``max_instances``.

    rois: float [B,R,4]; probs: float [B,R,C]; deltas: float [B,R,C,4] raw;
    windows: float [B,4] normalised window of the real image (boxes are clipped to it).
    ``min_confidence`` 0 keeps every score (Matterport skips the filter when it is 0).
    """
    class_ids = probs.argmax(dim=-1)  # [B,R], first maximum on ties
    scores = torch.gather(probs, 2, class_ids.unsqueeze(-1)).squeeze(-1)  # [B,R]
    index = class_ids[..., None, None].expand(-1, -1, 1, 4)  # [B,R,1,4]
    class_deltas = torch.gather(deltas, 2, index).squeeze(2)  # [B,R,4]
    boxes = apply_box_deltas(rois, class_deltas * class_deltas.new_tensor(std_dev))
    boxes = clip_boxes(boxes, windows.unsqueeze(1))
    # Background RoIs get a score below any threshold, so NMS never considers them.
    scores_for_nms = torch.where(class_ids > 0, scores, torch.full_like(scores, -1.0))
    count, boxes, scores, class_ids = nms(boxes, scores_for_nms, class_ids, nms_threshold,
                                          float(min_confidence), max_instances, probs.shape[-1])
    return DetectionBoxes(count, boxes, scores, class_ids)
