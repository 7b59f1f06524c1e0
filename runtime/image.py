"""Checking and converting input images to the RGB uint8 arrays the model expects.

Shapes: H, W image height and width in pixels.

Every entry point (``MaskRCNN.detect``, the datasets, the runtime) passes user images
through :func:`to_rgb_uint8`, so odd inputs are handled the same way everywhere:

=====================  ==============================================================
input                  result
=====================  ==============================================================
uint8 [H,W,3]          used as is (RGB order is assumed)
uint8 [H,W] / [H,W,1]  grayscale, replicated to 3 channels
uint8 [H,W,4]          RGBA, the alpha channel is dropped (as Matterport does)
uint16 (any of above)  16-bit, scaled to 8 bits: round(v * 255 / 65535)
other integer dtypes   accepted when every value lies in 0..255, else an error
float, bool, complex   an error: the value range is ambiguous, convert to uint8 first
side < MIN_IMAGE_SIDE  an error (nothing can be detected in a 1x1 image)
H*W > MAX_IMAGE_PIXELS an error (full-size masks of such an image do not fit in memory)
=====================  ==============================================================
"""

from __future__ import annotations

import os
import warnings
from typing import Union

import numpy as np

MIN_IMAGE_SIDE = 8
MAX_IMAGE_PIXELS = 1 << 26  # 67 megapixels, e.g. 8192 x 8192

PathLike = Union[str, "os.PathLike[str]"]


class ImageError(ValueError):
    """An image that cannot be used; the message names the image and the problem."""


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 [H,W,3] RGB array (see the module table).

    ``name`` identifies the image in error messages (an index or a file path).
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        channels = image.shape[2]
    elif image.ndim == 2:
        channels = 1
    else:
        raise ImageError(
            f"{name}: expected an image of shape [H,W], [H,W,1], [H,W,3] or [H,W,4], "
            f"got shape {list(image.shape)}"
        )
    height, width = image.shape[:2]
    _check_size(height, width, name)
    image = _to_uint8(image, name)
    if channels == 1:
        image = image.reshape(height, width, 1)
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _check_size(height: int, width: int, name: str) -> None:
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageError(
            f"{name}: image is {height}x{width} pixels; each side must be at least "
            f"{MIN_IMAGE_SIDE} pixels"
        )
    if height * width > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{name}: image is {height}x{width} pixels, more than {MAX_IMAGE_PIXELS} "
            f"pixels; downscale it first (full-size masks would not fit in memory)"
        )


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's channel order (BGR, BGRA) -> RGB: a reversed view of the colour channels;
    grayscale images and anything that is not [H,W,3|4] are returned unchanged."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, 2::-1]
    return image


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        scaled = (image.astype(np.uint32) * 255 + 32767) // 65535
        return scaled.astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        lo, hi = int(image.min()), int(image.max())
        if lo < 0 or hi > 255:
            raise ImageError(
                f"{name}: integer image of dtype {image.dtype} has values {lo}..{hi}, "
                f"outside 0..255; convert it to uint8 first"
            )
        return image.astype(np.uint8)
    raise ImageError(
        f"{name}: images must be uint8 (or uint16) RGB, got dtype {image.dtype}; "
        f"for float images in 0..1 use (img * 255).round().astype(np.uint8)"
    )


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file into an RGB uint8 [H,W,3] array.

    Palette, grayscale, 16-bit and RGBA files are converted as in :func:`to_rgb_uint8`
    (16-bit colour files through OpenCV, which keeps all 16 bits; Pillow keeps only the
    high byte). EXIF orientation is not applied (annotations refer to the stored pixels).
    Raises :class:`ImageError` naming the file when it is missing, a directory,
    unreadable or too large; the size is checked before the pixels are decoded.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow is only needed to read files

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image file")
    if not os.path.isfile(path):
        raise ImageError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check below says more
            with Image.open(path) as pil:
                _check_size(pil.size[1], pil.size[0], path)
                if _is_16bit_colour(pil):
                    array = _read_16bit_colour(path)
                else:
                    pil.load()
                    array = _pil_to_array(pil)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image is larger than {MAX_IMAGE_PIXELS} pixels ({exc}); downscale it first") \
            from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    return to_rgb_uint8(array, name=path)


def _is_16bit_colour(pil) -> bool:
    """RGB or RGBA stored with 16 bits per channel (Pillow decodes these to 8 bits)."""
    rawmode = pil.tile[0][3] if pil.tile else None  # (codec, extents, offset, args): a tuple before Pillow 11
    rawmode = rawmode[0] if isinstance(rawmode, tuple) and rawmode else rawmode
    return pil.mode in ("RGB", "RGBA") and isinstance(rawmode, str) and ";16" in rawmode


def _read_16bit_colour(path: str) -> np.ndarray:
    """uint16 [H,W,3|4] RGB(A) of a 16-bit colour PNG or TIFF, read with OpenCV."""
    try:
        import cv2
    except ImportError:
        raise ImageError(f"{path}: 16-bit colour image; reading all 16 bits needs OpenCV (pip install "
                         f"opencv-python-headless), or convert it to 8 bits first") from None
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"{path}: cannot read this 16-bit colour image")
    return bgr_to_rgb(array)  # BGR(A) -> RGB; alpha, if any, is dropped by to_rgb_uint8


def _pil_to_array(pil) -> np.ndarray:
    """Pillow image -> uint8 or uint16 numpy array with 1, 3 or 4 channels."""
    if pil.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(pil, dtype=np.uint16)
    if pil.mode == "I":  # 32-bit integer: 16-bit PNGs often open this way
        array = np.asarray(pil)
        return array.astype(np.uint16) if array.max() > 255 else array.astype(np.uint8)
    if pil.mode in ("L", "RGB", "RGBA"):
        return np.asarray(pil)
    if pil.mode in ("LA", "PA") or "transparency" in pil.info:
        return np.asarray(pil.convert("RGBA"))
    return np.asarray(pil.convert("RGB"))
