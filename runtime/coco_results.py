"""Detections as COCO results (the list pycocotools' ``loadRes`` scores), torch-free.

Shapes: h, w image size; bh, bw one box. Boxes in COCO are [x, y, width, height] pixels.
Masks are COCO's compressed RLE (column-major run lengths, as pycocotools' ``encode``),
computed from each instance's crop inside its box, without a full-frame mask.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from runtime.draw import instance_crop
from runtime.results import Detections


def run_lengths(crop: np.ndarray, box: Tuple[int, int, int, int], shape: Tuple[int, int]) -> List[int]:
    """Column-major run lengths (zeros first) of the [h,w] mask that is ``crop`` [bh,bw] at ``box``."""
    height, width = shape
    y1, x1, y2, x2 = (int(v) for v in box)
    columns = np.zeros((x2 - x1, height), bool)  # the box's columns, full height
    columns[:, y1:y2] = crop.T
    flat = columns.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(edges).tolist()
    before, after = x1 * height, (width - x2) * height
    if flat.size == 0:
        return [height * width]
    if flat[0]:
        runs = [before] + runs
    else:
        runs[0] += before
    if flat[-1]:
        runs.append(after)
    else:
        runs[-1] += after
    return runs


def rle_string(runs: Sequence[int]) -> str:
    """COCO's compact counts string (pycocotools' rleToString): each count, from the third
    on as the difference to the one two before, in 5-bit groups with a continuation bit."""
    chars = []
    for i, value in enumerate(runs):
        value = int(value) - (int(runs[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            chars.append(chr(48 + (group | (0x20 if more else 0))))
    return "".join(chars)


def encode_mask(crop: np.ndarray, box, shape) -> Dict[str, object]:
    return {"size": [int(shape[0]), int(shape[1])], "counts": rle_string(run_lengths(crop, box, shape))}


@dataclass
class CocoIds:
    """Image and category ids to write: from a COCO annotation file when given (so the
    results score against it), else images numbered from 1 and category = class id."""

    images: Dict[str, int] = field(default_factory=dict)  # file name -> image id
    categories: Dict[str, int] = field(default_factory=dict)  # class name -> category id

    @classmethod
    def from_annotations(cls, path: str) -> CocoIds:
        try:
            with open(path, encoding="utf8") as f:
                data = json.load(f)
            images = {os.path.basename(i["file_name"]): int(i["id"]) for i in data["images"]}
            categories = {c["name"]: int(c["id"]) for c in data["categories"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a COCO annotation file with images and categories ({exc})") from exc
        return cls(images, categories)

    def image_id(self, path: str, index: int) -> int:
        if self.images:
            name = os.path.basename(path)
            if name not in self.images:
                raise ValueError(f"{path}: not among the images of the COCO annotation file")
            return self.images[name]
        return index + 1

    def category_id(self, class_id: int, class_name: str) -> int:
        return self.categories.get(class_name, class_id) if self.categories else class_id


def coco_results(detections: Detections, image_id: int, class_names: Sequence[str], ids: CocoIds,
                 file_name: Optional[str] = None) -> List[Dict[str, object]]:
    """One COCO result per detection (bbox, score, category, RLE segmentation)."""
    shape = detections.masks.shape[:2]
    results = []
    for index, (box, class_id, score) in enumerate(zip(detections.rois, detections.class_ids, detections.scores)):
        y1, x1, y2, x2 = (int(v) for v in box)
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        entry = {"image_id": image_id, "category_id": ids.category_id(int(class_id), name), "category_name": name,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "score": round(float(score), 6),
                 "segmentation": encode_mask(instance_crop(detections, index), (y1, x1, y2, x2), shape)}
        if file_name is not None:
            entry["file_name"] = file_name
        results.append(entry)
    return results
