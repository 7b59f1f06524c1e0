"""The second-stage heads: box/class head (fpn_classifier) and mask head.

Shapes: B batch, R RoIs, D pyramid depth (256), C NUM_CLASSES, F FC size (1024),
p POOL_SIZE (7), q MASK_POOL_SIZE (14), M = 2q mask size (28).
"""

from __future__ import annotations

from typing import Dict, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.backbone import BatchNorm, BatchNormMode


class BoxHeadOutput(NamedTuple):
    """class_logits, probs: float [B,R,C]; deltas: float [B,R,C,4] raw (dy,dx,log dh,log dw)."""

    class_logits: torch.Tensor
    probs: torch.Tensor
    deltas: torch.Tensor


class BoxHead(nn.Module):
    """7x7 "valid" conv (an FC layer) + BN + ReLU, 1x1 conv + BN + ReLU, then class
    logits and class-specific box deltas."""

    def __init__(self, depth: int, pool_size: int, num_classes: int, fc_size: int, bn_mode: BatchNormMode):
        super().__init__()
        self.num_classes = num_classes
        self.mrcnn_class_conv1 = nn.Conv2d(depth, fc_size, pool_size)
        self.mrcnn_class_bn1 = BatchNorm(fc_size, bn_mode)
        self.mrcnn_class_conv2 = nn.Conv2d(fc_size, fc_size, 1)
        self.mrcnn_class_bn2 = BatchNorm(fc_size, bn_mode)
        self.mrcnn_class_logits = nn.Linear(fc_size, num_classes)
        self.mrcnn_bbox_fc = nn.Linear(fc_size, 4 * num_classes)

    def forward(self, pooled: torch.Tensor) -> BoxHeadOutput:
        """pooled: float [B,R,D,p,p] from pyramid_roi_align."""
        batch, rois = pooled.shape[:2]
        # mrcnn_class_conv1 is a "valid" pxp conv on a pxp input, i.e. a dense layer;
        # computed as one GEMM (faster than the conv kernel, same weights).
        conv1 = self.mrcnn_class_conv1
        x = F.linear(pooled.flatten(2), conv1.weight.flatten(1), conv1.bias)  # [B,R,F]
        x = x.reshape(batch * rois, -1, 1, 1)  # [B*R,F,1,1]
        x = F.relu(self.mrcnn_class_bn1(x))
        x = F.relu(self.mrcnn_class_bn2(self.mrcnn_class_conv2(x)))
        shared = x.flatten(1)  # [B*R,F]
        logits = self.mrcnn_class_logits(shared).reshape(batch, rois, self.num_classes)
        deltas = self.mrcnn_bbox_fc(shared).reshape(batch, rois, self.num_classes, 4)
        return BoxHeadOutput(logits, torch.softmax(logits, dim=-1), deltas)

    def keras_layers(self) -> Dict[str, nn.Module]:
        return {name: module for name, module in self.named_children()}


class MaskHead(nn.Module):
    """Four 3x3 conv + BN + ReLU, a 2x2 stride-2 transposed conv + ReLU, and a 1x1
    conv to one sigmoid mask per class."""

    def __init__(self, depth: int, num_classes: int, bn_mode: BatchNormMode):
        super().__init__()
        self.num_classes = num_classes
        for i in range(1, 5):
            setattr(self, f"mrcnn_mask_conv{i}", nn.Conv2d(depth if i == 1 else 256, 256, 3, padding=1))
            setattr(self, f"mrcnn_mask_bn{i}", BatchNorm(256, bn_mode))
        self.mrcnn_mask_deconv = nn.ConvTranspose2d(256, 256, 2, stride=2)
        self.mrcnn_mask = nn.Conv2d(256, num_classes, 1)

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled float [B,R,D,q,q] -> mask logits float [B,R,C,M,M]."""
        batch, rois = pooled.shape[:2]
        x = pooled.flatten(0, 1)  # [B*R,D,q,q]
        for i in range(1, 5):
            conv, bn = getattr(self, f"mrcnn_mask_conv{i}"), getattr(self, f"mrcnn_mask_bn{i}")
            x = F.relu(bn(conv(x)))
        x = F.relu(self.mrcnn_mask_deconv(x))  # [B*R,256,M,M]
        x = self.mrcnn_mask(x)  # [B*R,C,M,M]
        return x.reshape(batch, rois, self.num_classes, x.shape[-2], x.shape[-1])

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Mask probabilities float [B,R,C,M,M]."""
        return torch.sigmoid(self.logits(pooled))

    def keras_layers(self) -> Dict[str, nn.Module]:
        return {name: module for name, module in self.named_children()}
