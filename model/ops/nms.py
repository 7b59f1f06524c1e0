"""Greedy non-maximum suppression with a fixed-size output, as a ``torch.library`` op.

Shapes: B batch, N candidate boxes, K = max_output kept slots.
Boxes are (y1, x1, y2, x2), in any units (normalised in this model).

``mrcnn::nms`` serves both stages of Mask R-CNN: the RPN proposals (one class, no
score threshold) and the per-class detection NMS. Its contract is the one TensorRT's
``EfficientNMS_TRT`` plugin has (count plus zero-padded boxes, scores and classes), so
the exporter can lower it to that plugin or to standard ONNX ops.

Semantics, matching ``tf.image.non_max_suppression`` as Matterport uses it:
- candidates are the boxes with ``score >= score_threshold``;
- they are visited by descending score, ties by lower index;
- a candidate is dropped when its IoU with an already kept box *of the same class* is
  greater than ``iou_threshold``; IoU is 0 when either box has zero area;
- at most K boxes are kept; outputs are in visiting order, zero-padded.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch


def _iou_matrix(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU float32 [K,M] of ``boxes`` [K,4] with ``others`` [M,4], TensorFlow's arithmetic
    (corners reordered, IoU 0 when either box has zero area)."""
    def corners(b):
        return (np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
                np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3]))

    ymin, xmin, ymax, xmax = (v[:, None] for v in corners(boxes))  # [K,1]
    o_ymin, o_xmin, o_ymax, o_xmax = (v[None, :] for v in corners(others))  # [1,M]
    area = (ymax - ymin) * (xmax - xmin)
    o_area = (o_ymax - o_ymin) * (o_xmax - o_xmin)
    inter_h = np.maximum(np.minimum(ymax, o_ymax) - np.maximum(ymin, o_ymin), np.float32(0))
    inter_w = np.maximum(np.minimum(xmax, o_xmax) - np.maximum(xmin, o_xmin), np.float32(0))
    inter = inter_h * inter_w
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area + o_area - inter)
    return np.where((area <= 0) | (o_area <= 0), np.float32(0), iou).astype(np.float32)


def nms_indices(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
    iou_threshold: float, score_threshold: float, max_output: int, chunk: int = 128,
) -> np.ndarray:
    """Indices (int64 [<=K], in keep order) kept by greedy per-class NMS of one image.

    boxes float32 [N,4], scores float32 [N], classes int [N]; see the module docstring.
    Candidates are visited in chunks of ``chunk``: a chunk is first pruned by the boxes
    kept so far (one [K,chunk] IoU matrix), then resolved greedily with its own
    [chunk,chunk] matrix; the result is the one-at-a-time greedy result.
    """
    candidates = np.nonzero(scores >= score_threshold)[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    boxes, classes = boxes[order], classes[order]
    threshold = np.float32(iou_threshold)
    kept: list = []
    for start in range(0, len(order), chunk):
        part = slice(start, start + chunk)
        alive = np.ones(min(chunk, len(order) - start), dtype=bool)
        if kept:
            overlap = (_iou_matrix(boxes[kept], boxes[part]) > threshold) & (classes[kept][:, None] == classes[part])
            alive &= ~overlap.any(axis=0)
        inside = (_iou_matrix(boxes[part], boxes[part]) > threshold) & (classes[part][:, None] == classes[part])
        for i in np.nonzero(alive)[0]:
            if not alive[i]:
                continue
            kept.append(start + i)
            if len(kept) == max_output:
                return order[kept].astype(np.int64)
            alive[i + 1:] &= ~inside[i, i + 1:]
    return order[kept].astype(np.int64) if kept else np.zeros(0, np.int64)


@torch.library.custom_op("mrcnn::nms", mutates_args=())
def nms(
    boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor,
    iou_threshold: float, score_threshold: float, max_output: int, num_classes: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched per-class greedy NMS with fixed-size outputs.

    boxes: float [B,N,4]; scores: float [B,N]; class_ids: int64 [B,N] in
    0..num_classes-1 (``num_classes`` is static so exporters can lay classes out).
    Returns (num_detections int64 [B], boxes float [B,K,4], scores float [B,K],
    class_ids int64 [B,K]), sorted by score, zero-padded after num_detections.
    Runs on the CPU (results are moved back to the input's device).
    """
    batch = boxes.shape[0]
    out_count = torch.zeros(batch, dtype=torch.int64)
    out_boxes = torch.zeros(batch, max_output, 4, dtype=boxes.dtype)
    out_scores = torch.zeros(batch, max_output, dtype=scores.dtype)
    out_classes = torch.zeros(batch, max_output, dtype=torch.int64)
    boxes_np = boxes.detach().cpu().float().numpy()
    scores_np = scores.detach().cpu().float().numpy()
    classes_np = class_ids.detach().cpu().numpy()
    for b in range(batch):
        keep = nms_indices(boxes_np[b], scores_np[b], classes_np[b],
                           iou_threshold, score_threshold, max_output)
        count = len(keep)
        out_count[b] = count
        keep_t = torch.from_numpy(keep)
        out_boxes[b, :count] = boxes[b].detach().cpu()[keep_t]
        out_scores[b, :count] = scores[b].detach().cpu()[keep_t]
        out_classes[b, :count] = class_ids[b].detach().cpu()[keep_t]
    device = boxes.device
    return out_count.to(device), out_boxes.to(device), out_scores.to(device), out_classes.to(device)


@nms.register_fake
def _(boxes, scores, class_ids, iou_threshold, score_threshold, max_output, num_classes):
    batch = boxes.shape[0]
    return (
        boxes.new_empty(batch, dtype=torch.int64),
        boxes.new_empty(batch, max_output, 4),
        scores.new_empty(batch, max_output),
        class_ids.new_empty(batch, max_output, dtype=torch.int64),
    )
