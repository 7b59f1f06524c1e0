"""Built-in training augmentations: seeded, composable, masks moved with the image.

Shapes: H, W molded image size; N instances. Every augmentation is a callable
``(image uint8 [H,W,3], masks bool [H,W,N], rng) -> (image, masks)`` of the same shapes
(the training pipeline checks that). Boxes are not passed: the pipeline derives them
from the augmented masks afterwards, as Matterport does, so they always agree.

Geometric transforms (``Flip``, ``ScaleJitter``) move image and masks together; the
photometric ones (``ColorJitter``, ``GaussianNoise``, ``GaussianBlur``) change the image
only. All randomness comes from the ``rng`` argument, which the pipeline seeds by
(seed, epoch, position): a run is reproducible and resumes bit-exactly.

Named policies (``policy(name)``): ``none``, ``flip`` (Matterport's default: a random
horizontal flip) and ``default`` (flip, scale and aspect jitter with crop/pad, colour
jitter, noise, blur). An imgaug ``Sequential``, as Matterport's users pass it, is
adapted by ``as_augmentation`` (imgaug itself is optional).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Tuple, Union

import numpy as np

from runtime.resize import resize_bilinear

# augmentation(image uint8 [H,W,3], masks bool [H,W,N], rng) -> (image, masks), same shapes
Augmentation = Callable[[np.ndarray, np.ndarray, np.random.Generator], Tuple[np.ndarray, np.ndarray]]
POLICIES = ("none", "flip", "default")


# ----------------------------------------------------------------------------- geometric
@dataclasses.dataclass(frozen=True)
class Flip:
    """Mirror left-right with probability ``horizontal``, top-bottom with ``vertical``."""

    horizontal: float = 0.5
    vertical: float = 0.0

    def __call__(self, image, masks, rng):
        if rng.random() < self.horizontal:
            image, masks = image[:, ::-1], masks[:, ::-1]
        if rng.random() < self.vertical:
            image, masks = image[::-1], masks[::-1]
        return image, masks


@dataclasses.dataclass(frozen=True)
class ScaleJitter:
    """Zoom by a log-uniform factor in [min_scale, max_scale], stretch the aspect ratio by
    a log-uniform factor in [1/max_aspect, max_aspect], then crop or zero-pad back to
    H x W at a random offset (zero is what molding pads with). Instances pushed out of
    the frame are dropped by the pipeline (their masks are empty)."""

    min_scale: float = 0.6
    max_scale: float = 1.5
    max_aspect: float = 1.3
    probability: float = 0.8

    def __call__(self, image, masks, rng):
        if rng.random() >= self.probability:
            return image, masks
        height, width = image.shape[:2]
        scale = math.exp(rng.uniform(math.log(self.min_scale), math.log(self.max_scale)))
        aspect = math.exp(rng.uniform(-math.log(self.max_aspect), math.log(self.max_aspect)))
        new_h = max(1, int(round(height * scale * math.sqrt(aspect))))
        new_w = max(1, int(round(width * scale / math.sqrt(aspect))))
        resized = np.around(resize_bilinear(image, (new_h, new_w))).astype(np.uint8)  # [h',w',3]
        # masks by nearest neighbour at the same pixel centres as the bilinear taps
        rows = np.minimum(((np.arange(new_h) + 0.5) * height / new_h).astype(np.int64), height - 1)
        cols = np.minimum(((np.arange(new_w) + 0.5) * width / new_w).astype(np.int64), width - 1)
        zoomed = masks[rows][:, cols]  # [h',w',N]
        dy, sy, size_y = _placement(new_h, height, rng)
        dx, sx, size_x = _placement(new_w, width, rng)
        out_image = np.zeros_like(image)
        out_masks = np.zeros_like(masks)
        out_image[dy:dy + size_y, dx:dx + size_x] = resized[sy:sy + size_y, sx:sx + size_x]
        out_masks[dy:dy + size_y, dx:dx + size_x] = zoomed[sy:sy + size_y, sx:sx + size_x]
        return out_image, out_masks


def _placement(size: int, frame: int, rng: np.random.Generator) -> Tuple[int, int, int]:
    """(offset in the frame, offset in the resized image, length copied) along one axis:
    a random crop when ``size`` > ``frame``, a random pad otherwise."""
    if size >= frame:
        return 0, int(rng.integers(0, size - frame + 1)), frame
    return int(rng.integers(0, frame - size + 1)), 0, size


# ----------------------------------------------------------------------------- photometric
@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """Brightness (added, fraction of 255), contrast (about the image mean), saturation
    (towards grey) and per-channel gain, each drawn uniformly within +-its value."""

    brightness: float = 0.2
    contrast: float = 0.3
    saturation: float = 0.4
    channel_gain: float = 0.1
    probability: float = 0.8

    def __call__(self, image, masks, rng):
        if rng.random() >= self.probability:
            return image, masks
        pixels = image.astype(np.float32)  # [H,W,3]
        grey = pixels.mean(axis=2, keepdims=True)  # [H,W,1]
        pixels = grey + (pixels - grey) * (1 + rng.uniform(-self.saturation, self.saturation))
        pixels = pixels * (1 + rng.uniform(-self.channel_gain, self.channel_gain, 3)).astype(np.float32)
        mean = pixels.mean()
        pixels = mean + (pixels - mean) * (1 + rng.uniform(-self.contrast, self.contrast))
        pixels = pixels + 255 * rng.uniform(-self.brightness, self.brightness)
        return _to_uint8(pixels), masks


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
    """Add N(0, sigma) noise per pixel and channel, sigma uniform in [0, max_sigma] (0-255)."""

    max_sigma: float = 12.0
    probability: float = 0.5

    def __call__(self, image, masks, rng):
        if rng.random() >= self.probability:
            return image, masks
        sigma = rng.uniform(0, self.max_sigma)
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        return _to_uint8(image.astype(np.float32) + sigma * noise), masks


@dataclasses.dataclass(frozen=True)
class GaussianBlur:
    """Separable Gaussian blur, sigma uniform in [0.3, max_sigma] pixels, edges repeated."""

    max_sigma: float = 1.2
    probability: float = 0.3

    def __call__(self, image, masks, rng):
        if rng.random() >= self.probability:
            return image, masks
        sigma = rng.uniform(0.3, self.max_sigma)
        radius = max(1, int(math.ceil(3 * sigma)))
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps = (taps / taps.sum()).astype(np.float32)  # [2r+1]
        pixels = image.astype(np.float32)
        for axis in (0, 1):
            padded = np.pad(pixels, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
            length = pixels.shape[axis]
            pixels = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(taps))
        return _to_uint8(pixels), masks


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.around(pixels), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- composition
@dataclasses.dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each drawing from the same generator."""

    transforms: Tuple[Augmentation, ...]

    def __call__(self, image, masks, rng):
        for transform in self.transforms:
            image, masks = transform(image, masks, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(masks)


def policy(name: str) -> Optional[Augmentation]:
    """The named policy: ``none`` (None), ``flip`` or ``default``."""
    if name == "none":
        return None
    if name == "flip":
        return Compose((Flip(),))
    if name == "default":
        return Compose((Flip(), ScaleJitter(), ColorJitter(), GaussianNoise(), GaussianBlur()))
    raise ValueError(f"unknown augmentation policy {name!r}; choose one of {', '.join(POLICIES)}")


# ----------------------------------------------------------------------------- imgaug
# imgaug augmenters that move pixels; the others (colour, noise, blur) must not touch masks
# (the list Matterport's load_image_gt uses)
MASK_AUGMENTERS = ("Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud", "CropAndPad",
                   "Affine", "PiecewiseAffine")


@dataclasses.dataclass(frozen=True)
class ImgaugAugmentation:
    """An imgaug augmenter (e.g. ``iaa.Sequential``) as an Augmentation: one
    deterministic copy per sample, seeded from ``rng``, applied to the image and (with
    only the geometric augmenters active) to the masks."""

    augmenter: object

    def __call__(self, image, masks, rng):
        import imgaug  # optional: only needed by those who pass imgaug augmenters

        def geometric_only(images, augmenter, parents, default):
            return augmenter.__class__.__name__ in MASK_AUGMENTERS

        augmenter = self.augmenter.deepcopy()
        augmenter.seed_(int(rng.integers(0, 2 ** 31 - 1)))
        fixed = augmenter.to_deterministic()
        image = fixed.augment_image(image)
        masks = fixed.augment_image(masks.astype(np.uint8), hooks=imgaug.HooksImages(activator=geometric_only))
        return image, masks.astype(bool)


def as_augmentation(value: Union[None, str, Augmentation, object]) -> Optional[Augmentation]:
    """None, a policy name, an imgaug augmenter or an Augmentation callable -> Augmentation."""
    if value is None or isinstance(value, str):
        return policy(value or "none")
    if hasattr(value, "to_deterministic"):  # imgaug's Augmenter
        return ImgaugAugmentation(value)
    if not callable(value):
        raise TypeError(f"augmentation must be a policy name, a callable or an imgaug augmenter, "
                        f"not {type(value).__name__}")
    return value
