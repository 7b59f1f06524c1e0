"""Drawing detections: translucent masks, boxes, class names and scores, on RGB or BGR frames.

Shapes: h, w frame size; N detections; boxes (y1, x1, y2, x2) pixels, (y2, x2) outside.

Each class keeps its colour from frame to frame (hues spaced by the golden angle, so
neighbouring class ids differ). Masks are blended inside each box only, from
:class:`runtime.masks.InstanceMasks` crops when the detections are lazy, so no
full-frame mask is made. OpenCV draws the boxes and text (runtime.cv).
"""

from __future__ import annotations

import colorsys
from typing import Optional, Sequence, Tuple

import numpy as np

from runtime.cv import import_cv2
from runtime.masks import InstanceMasks
from runtime.results import Detections

GOLDEN_ANGLE = 0.381966  # of a turn


def class_color(class_id: int, bgr: bool = False) -> Tuple[int, int, int]:
    """A bright, stable colour for a class id: uint8 (r, g, b), or (b, g, r) for BGR frames."""
    hue = (int(class_id) * GOLDEN_ANGLE) % 1.0
    r, g, b = (int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))
    return (b, g, r) if bgr else (r, g, b)


def instance_crop(detections: Detections, index: int) -> np.ndarray:
    """bool [bh,bw]: the mask of detection ``index`` inside its box."""
    if isinstance(detections.masks, InstanceMasks):
        return detections.masks.crop(index)
    y1, x1, y2, x2 = detections.rois[index]
    return detections.masks[y1:y2, x1:x2, index]


def label(class_names: Optional[Sequence[str]], class_id: int, score: float) -> str:
    name = class_names[class_id] if class_names is not None and 0 <= class_id < len(class_names) else str(class_id)
    return f"{name} {score:.2f}"


def draw_detections(frame: np.ndarray, detections: Detections, class_names: Optional[Sequence[str]] = None,
                    bgr: bool = False, alpha: float = 0.45, boxes: bool = True, labels: bool = True,
                    in_place: bool = False) -> np.ndarray:
    """Draw ``detections`` on uint8 [h,w,3] ``frame`` (RGB, or BGR with ``bgr=True``).

    alpha: mask opacity. Returns the drawn frame: a copy unless ``in_place``.
    """
    cv2 = import_cv2("drawing detections")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"draw_detections takes a uint8 [h,w,3] frame, got {frame.dtype} {list(frame.shape)}")
    out = frame if in_place else frame.copy()
    order = np.argsort(detections.scores, kind="stable")  # the best drawn last, on top
    for index in order:
        color = class_color(int(detections.class_ids[index]), bgr)
        y1, x1, y2, x2 = (int(v) for v in detections.rois[index])
        region = out[y1:y2, x1:x2]
        mask = instance_crop(detections, index)
        if mask.any():
            tinted = cv2.addWeighted(region, 1.0 - alpha, np.full_like(region, color), alpha, 0.0)
            np.copyto(region, tinted, where=mask[:, :, None])
        if boxes:
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, 1, cv2.LINE_AA)
    if labels:
        for index in order:
            _draw_label(cv2, out, label(class_names, int(detections.class_ids[index]), float(detections.scores[index])),
                        detections.rois[index], class_color(int(detections.class_ids[index]), bgr))
    return out


def _draw_label(cv2, out: np.ndarray, text: str, box, color) -> None:
    """``text`` on a filled strip just above the box (inside it at the frame's top edge)."""
    y1, x1 = int(box[0]), int(box[1])
    scale = max(0.35, min(out.shape[:2]) / 1000)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = y1 - height - baseline - 2 if y1 - height - baseline - 2 >= 0 else y1
    cv2.rectangle(out, (x1, top), (x1 + width + 2, top + height + baseline + 2), color, cv2.FILLED)
    cv2.putText(out, text, (x1 + 1, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
