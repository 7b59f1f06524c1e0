"""Region proposal network: the shared RPN head and the proposal layer.

Shapes: B batch, A anchors over all levels, P proposals (POST_NMS_ROIS_*),
D pyramid depth, n = anchors per location (len(RPN_ANCHOR_RATIOS)).
Anchors and proposals are normalised (y1, x1, y2, x2).
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.ops.proposals import proposals


class RPNOutput(NamedTuple):
    """class_logits, probs: float [B,A,2] as (background, foreground);
    deltas: float [B,A,4] raw (dy, dx, log dh, log dw), before RPN_BBOX_STD_DEV."""

    class_logits: torch.Tensor
    probs: torch.Tensor
    deltas: torch.Tensor


class RPNHead(nn.Module):
    """One head shared by all levels: 3x3 conv (512) + ReLU, 1x1 to 2n logits, 1x1 to 4n deltas."""

    def __init__(self, depth: int, anchors_per_location: int, anchor_stride: int = 1):
        super().__init__()
        n = anchors_per_location
        self.rpn_conv_shared = nn.Conv2d(depth, 512, 3, stride=anchor_stride, padding=1)
        self.rpn_class_raw = nn.Conv2d(512, 2 * n, 1)
        self.rpn_bbox_pred = nn.Conv2d(512, 4 * n, 1)

    def forward(self, levels: Sequence[torch.Tensor]) -> RPNOutput:
        logits, deltas = [], []
        for feature in levels:
            shared = F.relu(self.rpn_conv_shared(feature))
            batch = feature.shape[0]
            # NCHW -> NHWC before reshaping so anchors run (y, x, anchor) as in Keras.
            logits.append(self.rpn_class_raw(shared).permute(0, 2, 3, 1).reshape(batch, -1, 2))
            deltas.append(self.rpn_bbox_pred(shared).permute(0, 2, 3, 1).reshape(batch, -1, 4))
        class_logits = torch.cat(logits, dim=1)  # [B,A,2]
        return RPNOutput(class_logits, torch.softmax(class_logits, dim=-1), torch.cat(deltas, dim=1))

    def keras_layers(self) -> Dict[str, nn.Module]:
        return {name: module for name, module in self.named_children()}


def propose(rpn: RPNOutput, anchors: torch.Tensor, proposal_count: int, nms_threshold: float,
            pre_nms_limit: int, std_dev: Sequence[float]) -> torch.Tensor:
    """Matterport's ProposalLayer (the ``mrcnn::proposals`` op): anchors float [A,4] ->
    proposals float [B,P,4] (P = proposal_count), sorted by score, zero-padded."""
    return proposals(rpn.probs[..., 1], rpn.deltas, anchors, [float(v) for v in std_dev],
                     min(pre_nms_limit, anchors.shape[0]), float(nms_threshold), proposal_count)
