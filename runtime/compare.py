"""Do two sets of detections of one image agree? (PyTorch vs Matterport, ONNX, TensorRT.)

Shapes: N, M detections; h, w image size. Uses :class:`runtime.Detections`.

Agreement means: a one-to-one matching in which paired detections have the same class
id, boxes within ``box_tol`` pixels (every coordinate) and scores within
``score_tol``; nothing left unmatched; the order differs only between detections whose
scores are within ``tie_tol``; and mask IoU of the pairs at least ``mean_mask_iou`` on
average and ``min_mask_iou`` for each pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from runtime.results import Detections


@dataclass
class Agreement:
    """pairs: (index in a, index in b); the unmatched indices; order inversions between
    pairs whose scores differ by more than the tie tolerance; per-pair mask IoU."""

    pairs: List[Tuple[int, int]] = field(default_factory=list)
    unmatched_a: List[int] = field(default_factory=list)
    unmatched_b: List[int] = field(default_factory=list)
    bad_order: List[Tuple[int, int]] = field(default_factory=list)
    mask_iou: np.ndarray = field(default_factory=lambda: np.zeros(0))
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0

    def problems(self, mean_mask_iou: float, min_mask_iou: float) -> List[str]:
        found = []
        if self.unmatched_a or self.unmatched_b:
            found.append(f"unmatched detections: {self.unmatched_a} in a, {self.unmatched_b} in b")
        if self.bad_order:
            found.append(f"order differs beyond score ties at pairs {self.bad_order[:5]}")
        if len(self.mask_iou):
            if self.mask_iou.mean() < mean_mask_iou:
                found.append(f"mean mask IoU {self.mask_iou.mean():.4f} < {mean_mask_iou}")
            if self.mask_iou.min() < min_mask_iou:
                found.append(f"min mask IoU {self.mask_iou.min():.4f} < {min_mask_iou}")
        return found


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool [h,w] masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def match_detections(a: Detections, b: Detections, box_tol: float, score_tol: float,
                     tie_tol: float) -> Agreement:
    """Pair each detection of ``a`` (in order) with the closest unpaired detection of
    ``b`` that has the same class and is within the box and score tolerances."""
    result = Agreement()
    taken = np.zeros(len(b), dtype=bool)
    for i in range(len(a)):
        box_diff = np.abs(b.rois.astype(np.float64) - a.rois[i]).max(axis=1) if len(b) else np.zeros(0)
        score_diff = np.abs(b.scores.astype(np.float64) - float(a.scores[i]))
        ok = (~taken) & (b.class_ids == a.class_ids[i]) & (box_diff <= box_tol) & (score_diff <= score_tol)
        if not ok.any():
            result.unmatched_a.append(i)
            continue
        candidates = np.nonzero(ok)[0]
        j = int(candidates[np.lexsort((score_diff[candidates], box_diff[candidates]))[0]])
        taken[j] = True
        result.pairs.append((i, j))
        result.max_box_diff = max(result.max_box_diff, float(box_diff[j]))
        result.max_score_diff = max(result.max_score_diff, float(score_diff[j]))
    result.unmatched_b = [int(j) for j in np.nonzero(~taken)[0]]
    result.bad_order = _order_inversions(result.pairs, a.scores, tie_tol)
    result.mask_iou = np.array([mask_iou(a.masks[:, :, i], b.masks[:, :, j]) for i, j in result.pairs])
    return result


def _order_inversions(pairs, scores_a, tie_tol) -> List[Tuple[int, int]]:
    """Pairs (i1, i2) ordered one way in a and the other way in b, with scores further
    apart than ``tie_tol``."""
    bad = []
    for k, (i1, j1) in enumerate(pairs):
        for i2, j2 in pairs[k + 1:]:
            if (i1 < i2) != (j1 < j2) and abs(float(scores_a[i1]) - float(scores_a[i2])) > tie_tol:
                bad.append((i1, i2))
    return bad
