"""Lean, torch-free inference runtime: molding, unmolding and the result type.

Nothing here imports torch or ``model``; a Jetson needs only numpy (and Pillow to read
image files) besides the inference backend.
"""

from runtime.image import ImageError, load_image, to_rgb_uint8
from runtime.molding import MoldedBatch, MoldingSpec, mold_images, resize_image
from runtime.postprocess import unmold_detections
from runtime.results import Detections

__all__ = [
    "Detections",
    "ImageError",
    "MoldedBatch",
    "MoldingSpec",
    "load_image",
    "mold_images",
    "resize_image",
    "to_rgb_uint8",
    "unmold_detections",
]
