"""Matterport's ResNet50/101 backbone: Caffe-style bottlenecks, Keras batch norm.

Shapes: B batch, H, W input size. C1 is [B,64,H/4,W/4]; C2..C5 are
[B,256|512|1024|2048, H/4|8|16|32, ...].

Differences from torchvision that matter for the weights: every conv has a bias, the
stride-2 sits on the first 1x1 conv of a block (and its 1x1 shortcut), BN epsilon is
1e-3, and the stem max-pool pads the TensorFlow "same" way (extra row/column at the
bottom/right). Module names keep the Keras layer names (see ``keras_layers``), so
weights import by name.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

STAGE4_BLOCKS = {"resnet50": 5, "resnet101": 22}


class BatchNormMode(NamedTuple):
    """How the BatchNorm layers normalise while training (inference always uses the
    moving statistics). frozen: Matterport's TRAIN_BN False; renorm_momentum: with
    frozen False, the update rate (PyTorch convention, 1 - Keras momentum) of Batch
    Renormalization's moving statistics, None for plain batch statistics."""

    frozen: bool = True
    renorm_momentum: Optional[float] = None


# Batch Renormalization's correction limits, reached linearly over the first steps
# (the paper starts as plain BN: r_max 1, d_max 0).
RENORM_R_MAX, RENORM_D_MAX, RENORM_RAMP_STEPS = 3.0, 5.0, 200
FROZEN = BatchNormMode()


class BatchNorm(nn.BatchNorm2d):
    """Keras BatchNormalization (epsilon 1e-3, momentum 0.99), float [B,C,H,W].

    mode.frozen (Matterport's TRAIN_BN=False) always normalises with the moving
    statistics, also while training; gamma and beta still learn. See BatchNormMode.
    """

    def __init__(self, num_features: int, mode: BatchNormMode = FROZEN):
        super().__init__(num_features, eps=1e-3, momentum=0.01)
        self.frozen = mode.frozen
        self.renorm_momentum = mode.renorm_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.frozen:
            return super().forward(x) if self.renorm_momentum is None else self._renorm(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    def _renorm(self, x: torch.Tensor) -> torch.Tensor:
        """Batch Renormalization: y = gamma * (x_hat * r + d) + beta, x_hat normalised with
        the batch statistics (mu_B, sigma_B), r = sigma_B / sigma and d = (mu_B - mu) / sigma
        clipped and without gradient: within the clip this is the moving-statistics
        normalisation (x - mu) / sigma. num_batches_tracked counts steps for the ramp."""
        ramp = (self.num_batches_tracked.float() / RENORM_RAMP_STEPS).clamp(max=1.0)
        r_max, d_max = 1.0 + (RENORM_R_MAX - 1.0) * ramp, RENORM_D_MAX * ramp
        moving_mean, moving_std = self.running_mean.clone(), (self.running_var + self.eps).sqrt()  # [C]
        # x_hat, and the batch mean and 1/sigma_B [C]; updates the moving statistics
        x_hat, mean, invstd = torch.native_batch_norm(x, None, None, self.running_mean, self.running_var,
                                                      True, self.renorm_momentum, self.eps)
        self.num_batches_tracked += 1
        r = torch.clamp(1.0 / (invstd * moving_std), 1.0 / r_max, r_max)
        d = torch.clamp((mean - moving_mean) / moving_std, -d_max, d_max)
        scale = (self.weight * r).view(1, -1, 1, 1).to(x.dtype)
        shift = (self.bias + self.weight * d).view(1, -1, 1, 1).to(x.dtype)
        return x_hat * scale + shift


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, bn_mode: BatchNormMode):
    """A biased conv ("same" padding for odd kernels at stride 1) and its BatchNorm."""
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding), BatchNorm(out_ch, bn_mode)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow max_pool(padding="SAME"): pad (total) // 2 before, the rest after.

    For 3x3/2 on even sizes (always the case here: conv1 halves a multiple of 64) that
    is one extra row/column at the bottom/right, which ``ceil_mode`` pooling expresses
    without a Pad (exports as a plain MaxPool). Otherwise the input is zero-padded: it
    follows a ReLU (>= 0) and every window holds a real element, so zeros never win.
    """
    if kernel == 3 and stride == 2 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads), kernel, stride)


class Bottleneck(nn.Module):
    """1x1 (stride s) -> 3x3 -> 1x1 residual block; ``conv_shortcut`` adds res*_branch1."""

    def __init__(self, in_ch, filters, stride, conv_shortcut, bn_mode, name):
        super().__init__()
        f1, f2, f3 = filters
        self.block_id = name  # e.g. "4b": Keras layers res4b_branch2a, bn4b_branch2a, ...
        self.conv2a, self.bn2a = conv_bn(in_ch, f1, 1, stride, bn_mode)
        self.conv2b, self.bn2b = conv_bn(f1, f2, 3, 1, bn_mode)
        self.conv2c, self.bn2c = conv_bn(f2, f3, 1, 1, bn_mode)
        self.conv1 = self.bn1 = None
        if conv_shortcut:
            self.conv1, self.bn1 = conv_bn(in_ch, f3, 1, stride, bn_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn2a(self.conv2a(x)))
        y = F.relu(self.bn2b(self.conv2b(y)))
        y = self.bn2c(self.conv2c(y))
        shortcut = self.bn1(self.conv1(x)) if self.conv1 is not None else x
        return F.relu(y + shortcut)

    def keras_layers(self) -> Dict[str, nn.Module]:
        layers = {}
        for branch in ("2a", "2b", "2c", "1"):
            conv = getattr(self, "conv" + branch)
            if conv is not None:
                layers[f"res{self.block_id}_branch{branch}"] = conv
                layers[f"bn{self.block_id}_branch{branch}"] = getattr(self, "bn" + branch)
        return layers


class BackboneFeatures(NamedTuple):
    """Outputs of the ResNet stages, each float [B,C,H/stride,W/stride]."""

    c2: torch.Tensor
    c3: torch.Tensor
    c4: torch.Tensor
    c5: torch.Tensor


class ResNet(nn.Module):
    """ResNet50/101 with Matterport's layout; returns C2..C5."""

    def __init__(self, architecture: str = "resnet101", bn_mode: BatchNormMode = FROZEN):
        super().__init__()
        if architecture not in STAGE4_BLOCKS:
            raise ValueError(f"architecture must be one of {sorted(STAGE4_BLOCKS)}, got {architecture!r}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn_conv1 = BatchNorm(64, bn_mode)
        stages = [(2, 3, (64, 64, 256), 1), (3, 4, (128, 128, 512), 2),
                  (4, 1 + STAGE4_BLOCKS[architecture], (256, 256, 1024), 2),
                  (5, 3, (512, 512, 2048), 2)]
        in_ch = 64
        self.stages = nn.ModuleList()
        for stage, blocks, filters, stride in stages:
            layers = []
            for index in range(blocks):
                first = index == 0
                name = f"{stage}{chr(ord('a') + index)}"
                layers.append(Bottleneck(in_ch, filters, stride if first else 1, first, bn_mode, name))
                in_ch = filters[2]
            self.stages.append(nn.Sequential(*layers))

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B,3,H,W] -> C1 [B,64,H/4,W/4] (conv1, BN, ReLU, same max-pool)."""
        return max_pool_same(F.relu(self.bn_conv1(self.conv1(images))))

    def forward(self, images: torch.Tensor) -> BackboneFeatures:
        x = self.stem(images)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return BackboneFeatures(*outputs)

    def keras_layers(self) -> Dict[str, nn.Module]:
        layers = {"conv1": self.conv1, "bn_conv1": self.bn_conv1}
        for stage in self.stages:
            for block in stage:
                layers.update(block.keras_layers())
        return layers
