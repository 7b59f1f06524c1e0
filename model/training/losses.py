"""Matterport's five losses (and its L2 regulariser).

Shapes: B batch, A anchors, T sampled RoIs, C classes, M mask size.
Each loss is a mean over the elements that count; when none count it is 0, computed
so that it stays connected to the graph (distributed training needs every trainable
parameter to receive a gradient, even a zero one).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights), 0 (graph-connected) when weights are all 0."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def smooth_l1(diff: torch.Tensor) -> torch.Tensor:
    """0.5 d^2 where |d| < 1, |d| - 0.5 elsewhere."""
    diff = diff.abs()
    return torch.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)


def rpn_class_loss(rpn_match: torch.Tensor, class_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over positive and negative anchors. rpn_match int [B,A] (1/-1/0);
    class_logits float [B,A,2] (background, foreground)."""
    target = (rpn_match == 1).long()
    loss = F.cross_entropy(class_logits.reshape(-1, 2), target.reshape(-1), reduction="none")
    return masked_mean(loss, (rpn_match != 0).reshape(-1))


def rpn_bbox_loss(rpn_bbox_targets: torch.Tensor, rpn_match: torch.Tensor, rpn_deltas: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 on positive anchors. rpn_bbox_targets float [B,256,4] holds each image's
    positives' targets in anchor order (zero-padded); rpn_deltas float [B,A,4]."""
    positive = rpn_match == 1  # [B,A]
    rows, anchors = torch.nonzero(positive, as_tuple=True)
    slots = torch.cumsum(positive.long(), dim=1)[rows, anchors] - 1  # k-th positive -> slot k
    diff = rpn_bbox_targets[rows, slots] - rpn_deltas[rows, anchors]  # [P,4]
    return smooth_l1(diff).sum() / max(diff.numel(), 1)


def mrcnn_class_loss(target_class_ids: torch.Tensor, class_logits: torch.Tensor,
                     active_class_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all sampled RoIs, ignoring RoIs whose *predicted* class is not
    active in the image's dataset (Matterport uses the first image's active classes)."""
    loss = F.cross_entropy(class_logits.flatten(0, 1), target_class_ids.flatten(), reduction="none")
    predicted = class_logits.argmax(dim=-1).flatten()
    active = active_class_ids[0].to(loss.dtype)[predicted]
    return masked_mean(loss, active)


def _positive_class_pick(target_class_ids: torch.Tensor, per_class: torch.Tensor) -> torch.Tensor:
    """per_class [B,T,C,...] -> the target class's slice [B*T,...]."""
    flat = per_class.flatten(0, 1)
    classes = target_class_ids.flatten().clamp(min=0)
    return flat[torch.arange(len(flat), device=flat.device), classes]


def mrcnn_bbox_loss(target_deltas: torch.Tensor, target_class_ids: torch.Tensor,
                    pred_deltas: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 of the true class's deltas on positive RoIs. pred_deltas [B,T,C,4]."""
    predicted = _positive_class_pick(target_class_ids, pred_deltas)  # [B*T,4]
    positive = (target_class_ids.flatten() > 0).unsqueeze(-1).expand_as(predicted)
    return masked_mean(smooth_l1(target_deltas.flatten(0, 1) - predicted), positive)


def mrcnn_mask_loss(target_masks: torch.Tensor, target_class_ids: torch.Tensor,
                    mask_logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy of the true class's mask on positive RoIs.
    mask_logits [B,T,C,M,M] (sigmoid not applied; computed stably from logits)."""
    logits = _positive_class_pick(target_class_ids, mask_logits)  # [B*T,M,M]
    loss = F.binary_cross_entropy_with_logits(logits, target_masks.flatten(0, 1), reduction="none")
    positive = (target_class_ids.flatten() > 0)[:, None, None].expand_as(loss)
    return masked_mean(loss, positive)


def l2_regularization(parameters: Iterable[torch.nn.Parameter], weight_decay: float) -> torch.Tensor:
    """Matterport's regulariser: WEIGHT_DECAY * sum(w^2) / size(w), summed over trainable
    weights except BN gamma/beta (pass those filtered). A float scalar without autograd
    history: its gradient is added by ``add_l2_gradient`` (autograd through w^2 costs
    about a fifth of a shapes training step: several passes over every weight)."""
    with torch.no_grad():
        terms = [torch.linalg.vector_norm(p) ** 2 / p.numel() for p in parameters]
        return weight_decay * torch.stack(terms).sum() if terms else torch.zeros(())


def add_l2_gradient(parameters: Iterable[torch.nn.Parameter], weight_decay: float) -> None:
    """Add the gradient of ``l2_regularization`` to each parameter's .grad (created where
    None): d/dw [WEIGHT_DECAY * sum(w^2) / size(w)] = 2 * WEIGHT_DECAY / size(w) * w."""
    with torch.no_grad():
        for p in parameters:
            scale = 2.0 * weight_decay / p.numel()
            if p.grad is None:
                p.grad = p.detach() * scale
            else:
                p.grad.add_(p.detach(), alpha=scale)
