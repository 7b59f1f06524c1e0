"""Image molding: resize, pad and subtract the mean, exactly as Matterport does.

This is the one copy used by training, export, calibration and the runtime.

Shapes: B batch, H, W molded (network input) size, h, w original image size.
Boxes are (y1, x1, y2, x2). In pixels, (y2, x2) lies just outside the box. In
normalised coordinates, ``(px - [0, 0, 1, 1]) / [H-1, W-1, H-1, W-1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from runtime.image import to_rgb_uint8
from runtime.resize import resize_bilinear

RESIZE_MODES = ("square", "pad64", "none", "crop")


@dataclass(frozen=True)
class MoldingSpec:
    """How images become network inputs (Matterport's IMAGE_* config values).

    mode: "square" (scale, then zero-pad to max_dim x max_dim), "pad64" (scale up to
    min_dim, pad each side to a multiple of 64), "none" (as is), "crop" (training only:
    scale, then a random min_dim x min_dim crop).
    """

    min_dim: int
    max_dim: int
    min_scale: float
    mode: str
    mean_pixel: Tuple[float, float, float]

    def __post_init__(self):
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {self.mode!r}")


@dataclass(frozen=True)
class ResizedImage:
    """An image after :func:`resize_image`: uint8 [H,W,3] plus what maps it back.

    window: (y1, x1, y2, x2) pixels of the real image inside the padded one.
    padding: ((top, bottom), (left, right), (0, 0)) zero padding that was added.
    crop: (y, x, h, w) of the random crop in "crop" mode, else None.
    """

    image: np.ndarray
    window: Tuple[int, int, int, int]
    scale: float
    padding: Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]
    crop: Optional[Tuple[int, int, int, int]]


@dataclass(frozen=True)
class MoldedBatch:
    """Network inputs for a batch and what is needed to unmold the outputs.

    images: float32 [B,3,H,W], RGB minus the mean pixel.
    windows: int32 [B,4] (y1, x1, y2, x2) pixels of each real image in the molded one.
    scales: float64 [B] resize factors; original_shapes: (h, w) of each input image.
    """

    images: np.ndarray
    windows: np.ndarray
    scales: np.ndarray
    original_shapes: Tuple[Tuple[int, int], ...]

    @property
    def image_shape(self) -> Tuple[int, int]:
        return tuple(self.images.shape[2:])


def compute_scale(height: int, width: int, spec: MoldingSpec) -> float:
    """Matterport's scale rule: up to min_dim, at least min_scale, capped by max_dim
    in "square" mode (``round`` is Python's half-to-even, as upstream)."""
    scale = 1.0
    if spec.mode == "none":
        return scale
    if spec.min_dim:
        scale = max(1, spec.min_dim / min(height, width))
    if spec.min_scale and scale < spec.min_scale:
        scale = spec.min_scale
    if spec.max_dim and spec.mode == "square":
        image_max = max(height, width)
        if round(image_max * scale) > spec.max_dim:
            scale = spec.max_dim / image_max
    return scale


def resize_image(
    image: np.ndarray, spec: MoldingSpec, rng: Optional[np.random.Generator] = None
) -> ResizedImage:
    """Resize and pad (or crop) an RGB uint8 [h,w,3] image per ``spec``.

    The bilinear result is truncated back to uint8, as Matterport's ``astype`` does.
    ``rng`` picks the crop in "crop" mode.
    """
    height, width = image.shape[:2]
    scale = compute_scale(height, width, spec)
    if scale != 1:
        size = (round(height * scale), round(width * scale))
        image = resize_bilinear(image, size).astype(np.uint8)
    height, width = image.shape[:2]
    no_pad = ((0, 0), (0, 0), (0, 0))
    if spec.mode == "none":
        return ResizedImage(image, (0, 0, height, width), scale, no_pad, None)
    if spec.mode == "crop":
        if min(height, width) < spec.min_dim:
            raise ValueError(f"crop mode needs images of at least {spec.min_dim} pixels")
        rng = rng or np.random.default_rng()
        y = int(rng.integers(0, height - spec.min_dim + 1))
        x = int(rng.integers(0, width - spec.min_dim + 1))
        crop = (y, x, spec.min_dim, spec.min_dim)
        image = image[y : y + spec.min_dim, x : x + spec.min_dim]
        return ResizedImage(image, (0, 0, spec.min_dim, spec.min_dim), scale, no_pad, crop)
    if spec.mode == "square":
        target_h = target_w = spec.max_dim
    else:  # pad64
        target_h = int(math.ceil(height / 64) * 64)
        target_w = int(math.ceil(width / 64) * 64)
    top, left = (target_h - height) // 2, (target_w - width) // 2
    padding = ((top, target_h - height - top), (left, target_w - width - left), (0, 0))
    image = np.pad(image, padding, mode="constant", constant_values=0)
    return ResizedImage(image, (top, left, height + top, width + left), scale, padding, None)


def mold_image(image: np.ndarray, mean_pixel: Sequence[float]) -> np.ndarray:
    """uint8 [H,W,3] -> float32 [3,H,W]: RGB minus the mean, computed in float64 as
    Matterport does (its float32 image minus a float64 mean) and then cast."""
    molded = image.astype(np.float32) - np.asarray(mean_pixel, dtype=np.float64)
    return np.ascontiguousarray(molded.astype(np.float32).transpose(2, 0, 1))


def mold_images(images: Sequence[np.ndarray], spec: MoldingSpec, first_index: int = 0) -> MoldedBatch:
    """Check, convert, resize, pad and mold a list of images into one batch.

    Errors name images by position, counting from ``first_index``.

    Images may have any size; after resizing all must share one shape (always true in
    "square" mode). Raises ValueError for an empty list or mismatching shapes.
    """
    if spec.mode == "crop":
        raise ValueError('resize mode "crop" is for training only; use "square" for inference')
    if len(images) == 0:
        raise ValueError("no images given: pass a list with at least one image")
    molded, windows, scales, shapes = [], [], [], []
    for index, image in enumerate(images):
        image = to_rgb_uint8(image, name=f"image {first_index + index}")
        resized = resize_image(image, spec)
        molded.append(mold_image(resized.image, spec.mean_pixel))
        windows.append(resized.window)
        scales.append(resized.scale)
        shapes.append(tuple(image.shape[:2]))
    if len({m.shape for m in molded}) != 1:
        sizes = sorted({m.shape[1:] for m in molded})
        raise ValueError(
            f"after resizing the images have different sizes {sizes}; use "
            f'IMAGE_RESIZE_MODE "square" or pass images one at a time'
        )
    return MoldedBatch(
        images=np.stack(molded),
        windows=np.asarray(windows, dtype=np.int32),
        scales=np.asarray(scales, dtype=np.float64),
        original_shapes=tuple(shapes),
    )


def norm_boxes(boxes: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Pixel boxes [..., 4] -> normalised float32 boxes for an image of ``shape`` (H, W)."""
    height, width = shape
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide(boxes - shift, scale).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Normalised boxes [..., 4] -> int32 pixel boxes, rounding half to even."""
    height, width = shape
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)
