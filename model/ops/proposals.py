"""Matterport's ProposalLayer as one op, ``mrcnn::proposals``: best anchors by
foreground score, refined by the RPN deltas, clipped, NMS'd, zero-padded.

Shapes: B batch, A anchors, k = pre_nms_limit (<= A), P = proposal_count.
Boxes are normalised (y1, x1, y2, x2).

It is one op (not top-k + nms in the graph) because the export targets implement the
whole stage differently: standard TopK + NonMaxSuppression for ONNX, and TensorRT's
EfficientNMS plugin, which does its own top-4096 selection (TensorRT's TopK is limited
to k <= 3840, below Matterport's PRE_NMS_LIMIT of 6000).
"""

from __future__ import annotations

from typing import List, Tuple

import torch

from model.boxes import apply_box_deltas, clip_boxes
from model.ops.nms import nms


def top_k_stable(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B,k] of the k largest scores per row, ties broken by lower index
    (TensorFlow's top_k and ONNX TopK order)."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :k]


def refined_anchors(scores: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, std_dev: List[float],
                    pre_nms_limit: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The proposals before NMS: the top ``pre_nms_limit`` anchors by score, refined by
    their deltas and clipped to [0,1]. Returns (order int64 [B,k] anchor indices,
    scores float [B,k], boxes float [B,k,4] normalised (y1,x1,y2,x2))."""
    k = min(pre_nms_limit, anchors.shape[0])
    order = top_k_stable(scores, k)  # [B,k]
    top_scores = torch.gather(scores, 1, order)  # [B,k]
    top_deltas = torch.gather(deltas, 1, order.unsqueeze(-1).expand(-1, -1, 4))  # [B,k,4]
    boxes = apply_box_deltas(anchors[order], top_deltas * top_deltas.new_tensor(std_dev))  # [B,k,4]
    return order, top_scores, clip_boxes(boxes, boxes.new_tensor([0.0, 0.0, 1.0, 1.0]))


def proposals_reference(scores: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, std_dev: List[float],
                        pre_nms_limit: int, nms_threshold: float, proposal_count: int) -> torch.Tensor:
    """Eager implementation of ``mrcnn::proposals`` (see there)."""
    order, top_scores, boxes = refined_anchors(scores, deltas, anchors, std_dev, pre_nms_limit)
    _, proposals, _, _ = nms(boxes, top_scores, torch.zeros_like(order), nms_threshold, float("-inf"),
                             proposal_count, 1)
    return proposals


@torch.library.custom_op("mrcnn::proposals", mutates_args=())
def proposals(scores: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, std_dev: List[float],
              pre_nms_limit: int, nms_threshold: float, proposal_count: int) -> torch.Tensor:
    """Region proposals.

    scores: float [B,A] foreground probabilities; deltas: float [B,A,4] raw RPN deltas
    (multiplied by ``std_dev`` here); anchors: float [A,4]. Keeps the top
    ``pre_nms_limit`` anchors (ties: lower index), applies the deltas, clips to [0,1],
    greedy NMS at ``nms_threshold`` (IoU > threshold suppresses).
    Returns float [B,P,4] sorted by score, zero-padded.
    """
    return proposals_reference(scores, deltas, anchors, std_dev, pre_nms_limit, nms_threshold, proposal_count)


@proposals.register_fake
def _(scores, deltas, anchors, std_dev, pre_nms_limit, nms_threshold, proposal_count):
    return deltas.new_empty(scores.shape[0], proposal_count, 4)
