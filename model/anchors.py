"""Anchor generation, numerically as Matterport's ``generate_pyramid_anchors``.

Shapes: A total anchors = sum over levels of Hl * Wl * len(ratios).
Anchors are (y1, x1, y2, x2), ordered by level (P2..P6), then row, column, ratio.
Centres sit at ``arange(size) * stride`` (no half-stride offset), one scale per level.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

from runtime.molding import norm_boxes


def backbone_shapes(image_shape: Tuple[int, int], strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Feature map (height, width) of each pyramid level for an (H, W) image."""
    return [(math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)) for s in strides]


def level_anchors(scale: float, ratios: Sequence[float], shape: Tuple[int, int],
                  feature_stride: int, anchor_stride: int) -> np.ndarray:
    """Pixel anchors float64 [Hl*Wl*len(ratios), 4] of one level."""
    ratios = np.asarray(ratios, dtype=np.float64)
    heights = scale / np.sqrt(ratios)  # [R]
    widths = scale * np.sqrt(ratios)  # [R]
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride  # [Hl]
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride  # [Wl]
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)  # [Hl,Wl] each
    box_widths, centers_x = np.meshgrid(widths, shifts_x)  # [Hl*Wl,R] each
    box_heights, centers_y = np.meshgrid(heights, shifts_y)
    centers = np.stack([centers_y, centers_x], axis=2).reshape(-1, 2)  # [Hl*Wl*R,2]
    sizes = np.stack([box_heights, box_widths], axis=2).reshape(-1, 2)  # [Hl*Wl*R,2]
    return np.concatenate([centers - 0.5 * sizes, centers + 0.5 * sizes], axis=1)


def pixel_anchors(image_shape: Tuple[int, int], scales: Sequence[float], ratios: Sequence[float],
                  strides: Sequence[int], anchor_stride: int) -> np.ndarray:
    """Pixel anchors float64 [A,4] for a molded image of (H, W) pixels."""
    shapes = backbone_shapes(image_shape, strides)
    return np.concatenate([
        level_anchors(scale, ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, shapes, strides)
    ])


def generate_anchors(image_shape: Tuple[int, int], scales: Sequence[float],
                     ratios: Sequence[float], strides: Sequence[int],
                     anchor_stride: int) -> np.ndarray:
    """Normalised float32 anchors [A,4] for a molded image of (H, W) pixels."""
    return norm_boxes(pixel_anchors(image_shape, scales, ratios, strides, anchor_stride), image_shape)
