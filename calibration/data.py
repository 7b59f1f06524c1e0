"""Calibration images, molded exactly as the runtime molds them.

Shapes: B the model's fixed batch, H, W its input size.

``--data`` names where the images come from:
- ``shapes``: generated shapes (model.data.dataset, another seed than training and evaluation);
- a folder of image files (any size or format runtime.load_image reads);
- ``coco:PATH``: the images of a COCO instances JSON (or Matterport's COCO root folder).
Each batch is what ``Detector.mold`` makes of the images (runtime.molding, the one copy
of the molding code), so the ranges are those the deployed model sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import numpy as np

from runtime.image import load_image
from runtime.model_info import ModelInfo
from runtime.molding import mold_images

SHAPES_CALIBRATION_SEED = 7  # training uses 1, evaluation 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class CalibrationDataError(ValueError):
    """--data names nothing usable; the message says what was expected."""


@dataclass
class CalibrationSet:
    """The molded inputs, one feed per batch: {"images": float32 [B,3,H,W], "windows": float32 [B,4]}."""

    feeds: List[Dict[str, np.ndarray]]
    description: str

    @property
    def num_images(self) -> int:
        return sum(len(feed["images"]) for feed in self.feeds)


def image_source(spec: str, info: ModelInfo, count: int) -> Iterator[np.ndarray]:
    """Up to ``count`` RGB images from ``spec`` (see the module docstring)."""
    if spec == "shapes":
        from model.data.dataset import shapes_dataset  # generated data needs model/ (and torch)

        side = info.input_size[0]
        dataset = shapes_dataset(count, side, side, seed=SHAPES_CALIBRATION_SEED)
        return (dataset.load_image(i) for i in range(count))
    if spec.startswith("coco:"):
        from model.data.coco import CocoDataset, DatasetError

        path = spec[len("coco:"):]
        dataset = CocoDataset()
        try:
            if os.path.isdir(path):
                json_path = os.path.join(path, "annotations", "instances_val2017.json")
                dataset.load_coco(json_path, os.path.join(path, "val2017"))
            else:
                dataset.load_coco(path, os.path.dirname(os.path.abspath(path)))
        except (DatasetError, OSError) as exc:
            raise CalibrationDataError(f"--data {spec}: {exc}") from exc
        dataset.prepare()
        return (dataset.load_image(i) for i in range(min(count, dataset.num_images)))
    if os.path.isdir(spec):
        names = sorted(n for n in os.listdir(spec) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise CalibrationDataError(f"--data {spec}: the folder holds no image files")
        return (load_image(os.path.join(spec, n)) for n in names[:count])
    raise CalibrationDataError(f"--data {spec}: expected shapes, coco:ANNOTATIONS.json or a folder of images")


def calibration_set(spec: str, info: ModelInfo, count: int, progress=None) -> CalibrationSet:
    """``count`` images from ``spec`` molded into the model's fixed batches (the last one
    filled by repeating its last image, as the runtime does)."""
    if count < 1:
        raise CalibrationDataError(f"--num-images must be at least 1, got {count}")
    feeds, batch, loaded = [], [], 0
    for image in image_source(spec, info, count):
        batch.append(image)
        loaded += 1
        if len(batch) == info.batch_size:
            feeds.append(_feed(batch, info))
            batch = []
        if progress:
            progress.update()
    if batch:
        feeds.append(_feed(batch + [batch[-1]] * (info.batch_size - len(batch)), info))
    if not feeds:
        raise CalibrationDataError(f"--data {spec}: no images")
    return CalibrationSet(feeds, f"{loaded} images from {spec}")


def _feed(images: List[np.ndarray], info: ModelInfo) -> Dict[str, np.ndarray]:
    molded = mold_images(images, info.molding)
    if molded.image_shape != tuple(info.input_size):
        raise CalibrationDataError(f"molded images are {molded.image_shape}, the model takes {info.input_size}")
    return {"images": molded.images, "windows": molded.windows.astype(np.float32)}


class FeedReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over a CalibrationSet."""

    def __init__(self, data: CalibrationSet, progress=None):
        self.data, self.progress, self.index = data, progress, 0

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self.index >= len(self.data.feeds):
            return None
        feed = self.data.feeds[self.index]
        self.index += 1
        if self.progress:
            self.progress.update(len(feed["images"]))
        return feed

    def __len__(self) -> int:
        return len(self.data.feeds)

    def rewind(self) -> None:
        self.index = 0
