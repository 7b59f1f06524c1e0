"""The one result type every backend returns (PyTorch ``detect``, ONNX Runtime, TensorRT).

Shapes: N detections, h, w original image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Instances found in one image, in the coordinates of the original image.

    rois: int32 [N,4] (y1, x1, y2, x2) pixels, (y2, x2) just outside the box.
    class_ids: int32 [N] in 1..NUM_CLASSES-1.
    scores: float32 [N] probability of the class, sorted from high to low.
    masks: bool [h,w,N] full-size instance masks, or (``detect(..., masks="lazy")``) a
    :class:`runtime.masks.InstanceMasks` that pastes each one into its box when read and
    answers ``masks.shape``, ``masks[:, :, i]`` and ``np.asarray(masks)`` the same way.

    ``r["rois"]`` works too, so code written for Matterport's result dicts keeps working.
    """

    rois: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in ("rois", "class_ids", "scores", "masks"):
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return ("rois", "class_ids", "scores", "masks")

    @classmethod
    def empty(cls, height: int, width: int) -> Detections:
        return cls(
            rois=np.zeros((0, 4), np.int32),
            class_ids=np.zeros((0,), np.int32),
            scores=np.zeros((0,), np.float32),
            masks=np.zeros((height, width, 0), bool),
        )
