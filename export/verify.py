"""Does the exported graph find what PyTorch finds? Run both on the same molded images
(not the export's example input) and match the detections one-to-one.

Shapes: B batch, K slots, h, w original image size.
Criteria (from the issue): same detections matched one-to-one with the same class ids,
boxes within 0.5 pixel (compared unrounded, in original-image pixels), scores within
1e-4, order differing only where scores are within 1e-5, mask IoU >= 0.99 on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from model.data.dataset import shapes_dataset
from runtime.compare import Agreement, match_detections
from runtime.detector import OnnxDetector
from runtime.molding import denorm_boxes, mold_images
from runtime.postprocess import boxes_in_window, paste_mask
from runtime.results import Detections

BOX_TOL, SCORE_TOL, TIE_TOL, MEAN_MASK_IOU = 0.5, 1e-4, 1e-5, 0.99


@dataclass
class Verification:
    counts: List[int] = field(default_factory=list)
    agreements: List[Agreement] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        boxes = max((a.max_box_diff for a in self.agreements), default=0.0)
        scores = max((a.max_score_diff for a in self.agreements), default=0.0)
        ious = np.concatenate([a.mask_iou for a in self.agreements] or [np.zeros(0)])
        head = (f"verification on {len(self.counts)} images ({self.counts} detections): max box diff {boxes:.3g} px, "
                f"max score diff {scores:.2g}, mean mask IoU {ious.mean() if len(ious) else 1.0:.4f}")
        return head + (" -> OK" if self.ok else " -> FAILED: " + "; ".join(self.problems))


def verification_images(side: int, count: int = 3, seed: int = 321) -> List[np.ndarray]:
    """Synthetic shapes images of several aspect ratios (not the export input)."""
    shapes_ = [(side, side), (side * 3 // 4, side), (side, side // 2)]
    images = []
    for i in range(count):
        h, w = shapes_[i % len(shapes_)]
        images.append(shapes_dataset(1, h, w, seed=seed + i).load_image(0))
    return images


def as_detections(outputs: Dict[str, np.ndarray], index: int, window, molded_shape, original_shape) -> Detections:
    """One image's raw outputs as Detections with *unrounded* original-pixel boxes and
    full-size masks (pasted with the rounded boxes, as unmolding does)."""
    count = int(outputs["num_detections"][index])
    on_window = boxes_in_window(outputs["boxes"][index][:count].astype(np.float32), window, molded_shape)
    height, width = original_shape
    pixels = on_window * np.array([height - 1, width - 1, height - 1, width - 1]) + np.array([0, 0, 1, 1])
    rounded = denorm_boxes(on_window, original_shape)
    masks = np.zeros((count, height, width), bool)
    for i in range(count):
        if (rounded[i, 2] - rounded[i, 0]) * (rounded[i, 3] - rounded[i, 1]) > 0:
            paste_mask(outputs["masks"][index][i], rounded[i], masks[i])
    return Detections(pixels, outputs["class_ids"][index][:count].astype(np.int32),
                      outputs["scores"][index][:count].astype(np.float32), masks.transpose(1, 2, 0))


def compare(reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], molded, first: int = 0,
            count: Optional[int] = None) -> Verification:
    """Compare the first ``count`` images (default all) of two output sets."""
    result = Verification()
    for i, original in enumerate(molded.original_shapes[:count]):
        window = tuple(molded.windows[i])
        a = as_detections(reference, i, window, molded.image_shape, original)
        b = as_detections(candidate, i, window, molded.image_shape, original)
        agreement = match_detections(a, b, BOX_TOL, SCORE_TOL, TIE_TOL)
        result.counts.append(len(a))
        result.agreements.append(agreement)
        result.problems += [f"image {first + i}: {p}" for p in agreement.problems(MEAN_MASK_IOU, 0.0)]
        if len(a) != len(b):
            result.problems.append(f"image {first + i}: {len(a)} detections in PyTorch, {len(b)} exported")
    return result


def verify_against_torch(model, onnx_path: str, images: Optional[Sequence[np.ndarray]] = None) -> Verification:
    """Run PyTorch and the exported graph on ``images`` (default: verification_images)
    and compare them (see the module docstring)."""
    detector = OnnxDetector(onnx_path, providers="cpu")  # a trt target runs its plugins' numpy references
    info = detector.info
    images = list(images) if images is not None else verification_images(info.input_size[0])
    result = Verification()
    for start in range(0, len(images), info.batch_size):
        chunk = images[start:start + info.batch_size]
        chunk = chunk + [chunk[-1]] * (info.batch_size - len(chunk))
        molded = mold_images(chunk, info.molding, start)
        windows = molded.windows.astype(np.float32)
        with torch.no_grad():
            reference = {k: v.numpy() for k, v in model(torch.from_numpy(molded.images),
                                                          torch.from_numpy(windows))._asdict().items()}
        part = compare(reference, detector.infer(molded.images, windows), molded, start,
                       count=min(len(images) - start, info.batch_size))
        result.counts += part.counts
        result.agreements += part.agreements
        result.problems += part.problems
    return result
