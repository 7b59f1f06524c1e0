"""Feature Pyramid Network on top of the ResNet stages (Matterport's fpn_* layers).

Shapes: B batch, H, W molded size, D = TOP_DOWN_PYRAMID_SIZE (256).
P2..P6 are float [B,D,H/4,W/4] ... [B,D,H/64,W/64].
"""

from __future__ import annotations

from typing import Dict, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.backbone import BackboneFeatures


class PyramidFeatures(NamedTuple):
    """P2..P5 feed the heads; P6 (P5 subsampled) is used by the RPN only."""

    p2: torch.Tensor
    p3: torch.Tensor
    p4: torch.Tensor
    p5: torch.Tensor
    p6: torch.Tensor


class FPN(nn.Module):
    """1x1 laterals, top-down nearest x2 upsampling and addition, 3x3 output convs."""

    def __init__(self, depth: int = 256, in_channels=(256, 512, 1024, 2048)):
        super().__init__()
        c2, c3, c4, c5 = in_channels
        self.fpn_c5p5 = nn.Conv2d(c5, depth, 1)
        self.fpn_c4p4 = nn.Conv2d(c4, depth, 1)
        self.fpn_c3p3 = nn.Conv2d(c3, depth, 1)
        self.fpn_c2p2 = nn.Conv2d(c2, depth, 1)
        self.fpn_p2 = nn.Conv2d(depth, depth, 3, padding=1)
        self.fpn_p3 = nn.Conv2d(depth, depth, 3, padding=1)
        self.fpn_p4 = nn.Conv2d(depth, depth, 3, padding=1)
        self.fpn_p5 = nn.Conv2d(depth, depth, 3, padding=1)

    def forward(self, c: BackboneFeatures) -> PyramidFeatures:
        p5 = self.fpn_c5p5(c.c5)
        p4 = F.interpolate(p5, scale_factor=2.0, mode="nearest") + self.fpn_c4p4(c.c4)
        p3 = F.interpolate(p4, scale_factor=2.0, mode="nearest") + self.fpn_c3p3(c.c3)
        p2 = F.interpolate(p3, scale_factor=2.0, mode="nearest") + self.fpn_c2p2(c.c2)
        p5 = self.fpn_p5(p5)
        # P6: Keras MaxPooling2D(pool_size=1, strides=2) keeps every other pixel.
        p6 = F.max_pool2d(p5, kernel_size=1, stride=2)
        return PyramidFeatures(self.fpn_p2(p2), self.fpn_p3(p3), self.fpn_p4(p4), p5, p6)

    def keras_layers(self) -> Dict[str, nn.Module]:
        return {name: module for name, module in self.named_children()}
