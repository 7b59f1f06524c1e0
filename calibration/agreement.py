"""Does a reduced-precision model find what the float32 one finds? Detection-level agreement.

Shapes: N detections of one image. Both models run through runtime.open_model on the
same images; detections are paired one-to-one (runtime.compare.match_detections) with
the same class, boxes within ``box_tol`` pixels and scores within ``score_tol``. Reported:
the share of the reference's detections matched, the candidate's extra ones, the mean
mask IoU of the pairs and the largest box and score differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from runtime.compare import match_detections
from runtime.detector import open_model

BOX_TOL_PX, SCORE_TOL = 4.0, 0.1  # fp16 / int8 move boxes by pixels and scores by hundredths


@dataclass
class ModelAgreement:
    reference: str
    candidate: str
    images: int
    reference_detections: int = 0
    matched: int = 0
    extra: int = 0
    mask_ious: List[float] = field(default_factory=list)
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0

    @property
    def matched_share(self) -> float:
        return self.matched / self.reference_detections if self.reference_detections else 1.0

    @property
    def mean_mask_iou(self) -> float:
        return float(np.mean(self.mask_ious)) if self.mask_ious else 1.0

    def summary(self) -> str:
        return (f"{self.candidate} against {self.reference} on {self.images} images: {self.matched} of "
                f"{self.reference_detections} detections matched ({100 * self.matched_share:.1f}%), "
                f"{self.extra} extra; mean mask IoU {self.mean_mask_iou:.3f}; max box diff {self.max_box_diff:.2f} px, "
                f"max score diff {self.max_score_diff:.3f} (pairs: same class, box within {BOX_TOL_PX:g} px, "
                f"score within {SCORE_TOL:g})")


def default_images(side: int, count: int = 8) -> List[np.ndarray]:
    """Held-out shapes images of several aspect ratios (needs model/ to draw them)."""
    from export.verify import verification_images

    return verification_images(side, count=count, seed=900)


def agreement_of(reference: str, candidate: str, theirs: Sequence, ours: Sequence, box_tol: float = BOX_TOL_PX,
                 score_tol: float = SCORE_TOL) -> ModelAgreement:
    """The agreement of ``ours`` (the candidate's Detections, one per image) with ``theirs``
    (the reference's on the same images); ``reference``/``candidate`` name the two."""
    result = ModelAgreement(reference, candidate, len(theirs))
    for a, b in zip(theirs, ours):
        agreement = match_detections(a, b, box_tol, score_tol, tie_tol=score_tol)
        result.reference_detections += len(a)
        result.matched += len(agreement.pairs)
        result.extra += len(agreement.unmatched_b)
        result.mask_ious += [float(v) for v in agreement.mask_iou]
        result.max_box_diff = max(result.max_box_diff, agreement.max_box_diff)
        result.max_score_diff = max(result.max_score_diff, agreement.max_score_diff)
    return result


def compare_models(reference: str, candidate: str, images: Optional[Sequence[np.ndarray]] = None,
                   score_threshold: Optional[float] = None) -> ModelAgreement:
    ref_model, cand_model = open_model(reference, providers="cpu"), open_model(candidate, providers="cpu")
    images = list(images) if images is not None else default_images(ref_model.info.input_size[0])
    ours = cand_model.detect(images, score_threshold=score_threshold)
    theirs = ref_model.detect(images, score_threshold=score_threshold)
    return agreement_of(reference, candidate, theirs, ours)
