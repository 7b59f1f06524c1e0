"""Instance masks: each MxM mask of probabilities resized into its box, at full resolution.

Shapes: N instances, M mask side (28), h, w original image size, bh, bw one box's size.
Boxes are int32 (y1, x1, y2, x2) pixels of the original image, (y2, x2) just outside.

Two pastes, one result:
- ``exact``: Matterport's ``unmold_mask`` bit for bit (scikit-image's bilinear resize in
  float64, reproduced by :func:`runtime.resize.resize_bilinear`). ``MaskRCNN.detect`` uses it.
- ``fast``: the same bilinear weights written as two matrices, [bh,M] and [bw,M], and
  two float32 matrix products per mask into a reused buffer. It differs from ``exact``
  only where float32 rounding moves a value across the threshold (a pixel now and then;
  tests/runtime/test_masks.py and benchmarks/runtime_latency.py measure the mask IoU).

Nothing here allocates a full-frame array unless asked: :class:`InstanceMasks` keeps the
MxM probabilities and pastes each instance into its box on first use (``crop``), and
builds the bool [h,w,N] stack only for ``full()`` / ``np.asarray(masks)``.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import numpy as np

from runtime.resize import resize_bilinear

MASK_THRESHOLD = 0.5
PASTES = ("fast", "exact")


@lru_cache(maxsize=256)  # bounded memory: at most 256 matrices of n_out x 28 floats
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """float32 [n_out, n_in] weights of scikit-image's bilinear resize along one axis.

    Output i samples the input at c = (i + 0.5) * n_in / n_out - 0.5 (runtime.resize);
    input j weighs max(0, 1 - |c - j|), which is 1 - frac on floor(c) and frac on
    floor(c) + 1, and nothing for taps outside the input (they read zeros)."""
    coord = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(coord[:, None] - np.arange(n_in)[None, :]))
    matrix = weights.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


class _Workspace(threading.local):
    """A float32 buffer reused across pastes, one per thread: fresh large temporaries
    would cost a page fault per 4 KB on every frame."""

    def __init__(self):
        self.buffer = np.empty(0, np.float32)

    def view(self, height: int, width: int) -> np.ndarray:
        if self.buffer.size < height * width:
            self.buffer = np.empty(height * width, np.float32)
        return self.buffer[: height * width].reshape(height, width)


_WORKSPACE = _Workspace()


def paste_fast(mask: np.ndarray, height: int, width: int, threshold: float = MASK_THRESHOLD,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """float [M,M] probabilities -> bool [height, width]: resized to the box and thresholded
    (>= threshold). ``out``: a bool [height, width] array to write into."""
    out = np.empty((height, width), bool) if out is None else out
    low, high = float(mask.min()), float(mask.max())
    # scikit-image clips to the input's range, so a mask entirely >= threshold stays so
    # everywhere (also where the zero border blends in), and one entirely below never gets there.
    if low >= threshold or high < threshold:
        out[...] = low >= threshold
        return out
    mask = np.asarray(mask, np.float32)
    rows = bilinear_matrix(mask.shape[0], height) @ mask  # [bh,M]
    values = _WORKSPACE.view(height, width)
    np.matmul(rows, bilinear_matrix(mask.shape[1], width).T, out=values)  # [bh,bw]
    return np.greater_equal(values, threshold, out=out)


def paste_exact(mask: np.ndarray, height: int, width: int, threshold: float = MASK_THRESHOLD,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """As :func:`paste_fast`, bit-identical to Matterport's unmold_mask."""
    out = np.empty((height, width), bool) if out is None else out
    return np.greater_equal(resize_bilinear(mask, (height, width)), threshold, out=out)


_PASTE = {"fast": paste_fast, "exact": paste_exact}


def check_paste(paste: str) -> None:
    if paste not in PASTES:
        raise ValueError(f"paste must be one of {PASTES}, got {paste!r}")


class InstanceMasks:
    """The masks of N instances of one image, pasted on demand.

    probs: float32 [N,M,M] mask probabilities of each instance's class; rois: int32 [N,4]
    boxes with positive area; image_shape: (h, w). Behaves like the bool [h,w,N] array of
    Matterport's results where code reads one instance or converts: ``masks.shape``,
    ``masks[:, :, i]`` (bool [h,w]), ``np.asarray(masks)`` (bool [h,w,N]). ``crop(i)`` is
    the cheap form: bool [bh,bw] inside ``rois[i]``.
    """

    dtype = np.dtype(bool)
    ndim = 3

    def __init__(self, probs: np.ndarray, rois: np.ndarray, image_shape: Tuple[int, int],
                 threshold: float = MASK_THRESHOLD, paste: str = "fast"):
        check_paste(paste)
        self.probs = np.asarray(probs, np.float32)
        self.rois = np.asarray(rois, np.int32).reshape(-1, 4)
        if len(self.probs) != len(self.rois):
            raise ValueError(f"{len(self.probs)} masks for {len(self.rois)} boxes")
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.threshold = float(threshold)
        self.paste = paste
        self._crops: Dict[int, np.ndarray] = {}

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (*self.image_shape, len(self.rois))

    def crop(self, index: int) -> np.ndarray:
        """bool [bh,bw]: instance ``index`` inside its box (computed once)."""
        if index not in self._crops:
            y1, x1, y2, x2 = (int(v) for v in self.rois[index])
            self._crops[index] = _PASTE[self.paste](self.probs[index], y2 - y1, x2 - x1, self.threshold)
        return self._crops[index]

    def crops(self) -> List[np.ndarray]:
        return [self.crop(i) for i in range(len(self.rois))]

    def instance(self, index: int) -> np.ndarray:
        """bool [h,w]: instance ``index`` in the whole image."""
        full = np.zeros(self.image_shape, bool)
        y1, x1, y2, x2 = self.rois[index]
        full[y1:y2, x1:x2] = self.crop(index)
        return full

    def full(self) -> np.ndarray:
        """bool [h,w,N], Matterport's layout (a view of [N,h,w]: each instance contiguous)."""
        stack = np.zeros((len(self.rois), *self.image_shape), bool)
        for index, (y1, x1, y2, x2) in enumerate(self.rois):
            stack[index, y1:y2, x1:x2] = self.crop(index)
        return stack.transpose(1, 2, 0)

    def __array__(self, dtype=None, copy=None):
        full = self.full()
        return full if dtype is None else full.astype(dtype)

    def __getitem__(self, key):
        if (isinstance(key, tuple) and len(key) == 3 and key[0] == slice(None) and key[1] == slice(None)
                and isinstance(key[2], (int, np.integer))):
            index = int(key[2])
            if not -len(self.rois) <= index < len(self.rois):
                raise IndexError(f"instance {index} of {len(self.rois)}")
            return self.instance(index % len(self.rois))
        return self.full()[key]

    def __repr__(self) -> str:
        return f"InstanceMasks({len(self.rois)} instances, image {self.image_shape}, paste={self.paste!r})"
