"""Second-stage training targets (Matterport's DetectionTargetLayer), in torch.

Shapes: B batch, P proposals, G max GT instances, T = TRAIN_ROIS_PER_IMAGE,
m mini-mask size, M = MASK_SHAPE (28). Boxes are normalised (y1, x1, y2, x2).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from model.boxes import box_iou, box_refinement
from model.config import Config
from model.ops.roi_align import crop_and_resize


class DetectionTargets(NamedTuple):
    """rois float [B,T,4]; class_ids int64 [B,T] (0 = background or padding);
    deltas float [B,T,4] (/ BBOX_STD_DEV); masks float [B,T,M,M] of 0/1.
    Positive RoIs come first; zero rows pad to T."""

    rois: torch.Tensor
    class_ids: torch.Tensor
    deltas: torch.Tensor
    masks: torch.Tensor


def detection_targets(proposals: torch.Tensor, gt_class_ids: torch.Tensor, gt_boxes: torch.Tensor,
                      gt_masks: torch.Tensor, config: Config, generator: torch.Generator) -> DetectionTargets:
    """Sample T RoIs per image (ROI_POSITIVE_RATIO positives with IoU >= 0.5 to a GT
    box, negatives < 0.5 away from crowds) and build their targets.

    proposals float [B,P,4]; gt_class_ids int [B,G] (negative = crowd, 0 = padding);
    gt_boxes float [B,G,4] normalised; gt_masks float/bool [B,G,m,m] (mini masks when
    USE_MINI_MASK, else full-image masks). ``generator`` drives the random sampling.
    """
    per_image = [_image_targets(proposals[b], gt_class_ids[b], gt_boxes[b], gt_masks[b], config, generator)
                 for b in range(proposals.shape[0])]
    return DetectionTargets(*(torch.stack(parts) for parts in zip(*per_image)))


def _image_targets(proposals, gt_class_ids, gt_boxes, gt_masks, config, generator):
    c = config
    total = c.TRAIN_ROIS_PER_IMAGE
    proposals = proposals[proposals.abs().sum(dim=1) > 0]  # drop zero padding
    present = gt_boxes.abs().sum(dim=1) > 0
    gt_class_ids, gt_boxes, gt_masks = gt_class_ids[present], gt_boxes[present], gt_masks[present]
    crowd = gt_class_ids < 0
    crowd_boxes = gt_boxes[crowd]
    gt_class_ids, gt_boxes, gt_masks = gt_class_ids[~crowd], gt_boxes[~crowd], gt_masks[~crowd]

    overlaps = box_iou(proposals, gt_boxes)  # [P,G]
    best_iou = overlaps.max(dim=1).values if overlaps.shape[1] else proposals.new_full((len(proposals),), -1.0)
    if len(crowd_boxes):
        no_crowd = box_iou(proposals, crowd_boxes).max(dim=1).values < 0.001
    else:
        no_crowd = torch.ones(len(proposals), dtype=torch.bool, device=proposals.device)
    positive = torch.nonzero(best_iou >= 0.5).squeeze(1)
    negative = torch.nonzero((best_iou < 0.5) & no_crowd).squeeze(1)

    positive = _shuffle(positive, generator)[: int(total * c.ROI_POSITIVE_RATIO)]
    ratio = torch.tensor(1.0 / c.ROI_POSITIVE_RATIO, dtype=torch.float32)
    negative_count = int(ratio * float(len(positive))) - len(positive)
    negative = _shuffle(negative, generator)[:negative_count]

    positive_rois = proposals[positive]
    assignment = overlaps[positive].argmax(dim=1) if len(positive) else positive
    roi_gt_boxes = gt_boxes[assignment]
    deltas = box_refinement(positive_rois, roi_gt_boxes) / positive_rois.new_tensor(c.BBOX_STD_DEV)
    masks = _mask_targets(positive_rois, roi_gt_boxes, gt_masks[assignment].float(), config)

    rois = torch.cat([positive_rois, proposals[negative]])[:total]
    pad = total - len(rois)
    after_positive = total - len(positive)
    return (
        torch.nn.functional.pad(rois, (0, 0, 0, pad)),
        torch.nn.functional.pad(gt_class_ids[assignment].long(), (0, after_positive)),
        torch.nn.functional.pad(deltas, (0, 0, 0, after_positive)),
        torch.nn.functional.pad(masks, (0, 0, 0, 0, 0, after_positive)),
    )


def _shuffle(indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return indices[torch.randperm(len(indices), generator=generator).to(indices.device)]


def _mask_targets(rois, roi_gt_boxes, roi_masks, config) -> torch.Tensor:
    """The GT mask under each positive RoI, resized to MASK_SHAPE and rounded: float [n,M,M].

    With mini masks the RoI is first expressed in the GT box's normalised frame.
    """
    boxes = rois
    if config.USE_MINI_MASK:
        gt_h = roi_gt_boxes[:, 2] - roi_gt_boxes[:, 0]
        gt_w = roi_gt_boxes[:, 3] - roi_gt_boxes[:, 1]
        boxes = torch.stack([(rois[:, 0] - roi_gt_boxes[:, 0]) / gt_h, (rois[:, 1] - roi_gt_boxes[:, 1]) / gt_w,
                             (rois[:, 2] - roi_gt_boxes[:, 0]) / gt_h, (rois[:, 3] - roi_gt_boxes[:, 1]) / gt_w], 1)
    index = torch.arange(len(rois), device=rois.device)
    crops = crop_and_resize(roi_masks.unsqueeze(1), boxes, index, *config.MASK_SHAPE)  # [n,1,M,M]
    return torch.round(crops.squeeze(1))
