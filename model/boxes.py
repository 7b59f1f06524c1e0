"""Box arithmetic in torch, float32 in TensorFlow's operation order (so Matterport's
numbers are reproduced to the last bit where the ops allow).

Shapes: ... any leading dims. Boxes are (y1, x1, y2, x2); deltas are
(dy, dx, log(dh), log(dw)) relative to the box size.
"""

from __future__ import annotations

import torch


def apply_box_deltas(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Shift and scale ``boxes`` [...,4] by ``deltas`` [...,4] (already times std dev)."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    center_y = center_y + deltas[..., 0] * height
    center_x = center_x + deltas[..., 1] * width
    height = height * torch.exp(deltas[..., 2])
    width = width * torch.exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return torch.stack([y1, x1, y1 + height, x1 + width], dim=-1)


def clip_boxes(boxes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Clip ``boxes`` [...,4] into ``window`` [...,4] (broadcast) = (y1, x1, y2, x2)."""
    low = torch.stack([window[..., 0], window[..., 1], window[..., 0], window[..., 1]], -1)
    high = torch.stack([window[..., 2], window[..., 3], window[..., 2], window[..., 3]], -1)
    return torch.maximum(torch.minimum(boxes, high), low)


def box_refinement(boxes: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Deltas [...,4] that turn ``boxes`` into ``gt_boxes`` (inverse of apply_box_deltas)."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height
    center_x = boxes[..., 1] + 0.5 * width
    gt_height = gt_boxes[..., 2] - gt_boxes[..., 0]
    gt_width = gt_boxes[..., 3] - gt_boxes[..., 1]
    gt_center_y = gt_boxes[..., 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[..., 1] + 0.5 * gt_width
    return torch.stack([
        (gt_center_y - center_y) / height,
        (gt_center_x - center_x) / width,
        torch.log(gt_height / height),
        torch.log(gt_width / width),
    ], dim=-1)


def norm_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel boxes [...,4] -> normalised float32: (b - [0,0,1,1]) / [H-1,W-1,H-1,W-1]."""
    boxes = boxes.float()
    shift = boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
    scale = boxes.new_tensor([height, width, height, width]) - 1.0
    return (boxes - shift) / scale


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU matrix [N,M] of boxes1 [N,4] and boxes2 [M,4] (Matterport's overlaps)."""
    y1 = torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return intersection / (area1[:, None] + area2[None, :] - intersection)
