"""Bilinear resizing that reproduces scikit-image, without scikit-image.

Matterport resizes images (molding) and 28x28 mask probabilities (unmolding) with
``skimage.transform.resize(x, shape, order=1, mode="constant", anti_aliasing=False)``.
That call samples output pixel centres, ``x_in = (x_out + 0.5) * in / out - 0.5``,
interpolates bilinearly in float64 with zeros outside the image (scipy's
"grid-constant" mode), and clips the result to the input's value range. This module
does the same arithmetic in the same order, so results are bit-identical to
scikit-image 0.26 (tests/runtime/test_resize.py checks it on random inputs).

Shapes: H, W input size; h, w output size; C optional channels.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def _taps(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the lower input neighbour and the two bilinear weights.

    Neighbour indices are shifted by +1 and clamped to [0, n_in + 1], the positions of
    a one-pixel zero border, so out-of-range neighbours read 0 (grid-constant).
    """
    coord = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    lower = np.floor(coord)
    frac = coord - lower
    lower = lower.astype(np.int64)
    first = np.clip(lower + 1, 0, n_in + 1)
    second = np.clip(lower + 2, 0, n_in + 1)
    return np.stack([first, second]), 1.0 - frac, frac


def resize_bilinear(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Resize [H,W] or [H,W,C] ``image`` to ``shape`` = (h, w) like scikit-image.

    Returns float64 for integer input (``preserve_range=True`` semantics) and the
    input dtype for float input, values clipped to the input's [min, max].
    """
    height, width = image.shape[:2]
    out_h, out_w = int(shape[0]), int(shape[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize target must be at least 1x1, got {out_h}x{out_w}")
    # The taps are gathered from the input's own dtype and only then converted: converting
    # is exact, and a downscale never touches (or copies) most of a large frame in float64.
    padded = np.zeros((height + 2, width + 2) + image.shape[2:], image.dtype)
    padded[1:-1, 1:-1] = image

    (y_a, y_b), wy0, wy1 = _taps(height, out_h)
    (x_a, x_b), wx0, wx1 = _taps(width, out_w)
    extra = (None,) * (image.ndim - 2)  # broadcast weights over channels
    wy0, wy1 = wy0[(slice(None), None) + extra], wy1[(slice(None), None) + extra]
    wx0, wx1 = wx0[(None, slice(None)) + extra], wx1[(None, slice(None)) + extra]

    def tap(rows, columns):
        return padded[rows[:, None], columns[None, :]].astype(np.float64)

    # Same summation order as scipy's spline loop: (y0,x0), (y0,x1), (y1,x0), (y1,x1),
    # each term computed as value * wy * wx.
    out = tap(y_a, x_a) * wy0 * wx0
    out += tap(y_a, x_b) * wy0 * wx1
    out += tap(y_b, x_a) * wy1 * wx0
    out += tap(y_b, x_b) * wy1 * wx1

    out = _clip_to_input_range(out, float(image.min()), float(image.max()))
    if np.issubdtype(image.dtype, np.floating):
        return out.astype(image.dtype)
    return out


def _clip_to_input_range(out: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """scikit-image's clip=True: clip to the input's [lo, hi], but keep exact zeros (the
    fill value) when 0 lies outside that range."""
    keep_zeros = not (lo <= 0.0 <= hi)
    zeros = out == 0.0 if keep_zeros else None
    np.clip(out, lo, hi, out=out)
    if keep_zeros:
        out[zeros] = 0.0
    return out


def zoom_nearest(masks: np.ndarray, scale: float) -> np.ndarray:
    """Scale [H,W,...] ``masks`` by ``scale`` with nearest neighbours, like Matterport's
    ``scipy.ndimage.zoom(mask, [scale, scale, 1], order=0)``: output size round(H*scale),
    corners aligned (input index = round_half_up(out * (H-1)/(h-1))).

    One deliberate difference: when (h-1) * ((H-1)/(h-1)) rounds one ulp above H-1,
    scipy treats the last output row (or column) as outside the image and leaves it
    empty; here it takes the last input row, as intended.
    """
    indices = []
    for size in masks.shape[:2]:
        out = int(round(size * scale))
        step = (size - 1) / (out - 1) if out > 1 else 1.0
        indices.append(np.floor(np.arange(out) * step + 0.5).astype(np.int64).clip(0, size - 1))
    return masks[indices[0][:, None], indices[1][None, :]]
