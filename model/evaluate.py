"""COCO box/mask AP (pycocotools) and Matterport's VOC-style mAP@0.5 for a model.

    python -m model.evaluate --dataset shapes --weights shapes.pt --limit 100
    python -m model.evaluate --dataset coco --data /data/coco --weights coco.pt --limit 500
    python -m model.evaluate --dataset coco --data annotations.json --images imgs/ --weights m.pt
    python -m model.evaluate --dataset coco --data ood.json --weights shapes.pt --set IMAGE_MAX_DIM=192   # any Config

Writes the detections as a COCO results JSON (``--output``) and a summary with
AP, AP50, AP75, APs, APm, APl for boxes and masks, and mAP@0.5.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from model.config import ConfigError
from model.data.coco import DatasetError, coco_api, dataset_to_coco, rle_encode
from model.data.dataset import Dataset
from model.weights.h5_weights import WeightsError
from runtime.files import write_text_atomic
from runtime.image import ImageError
from runtime.results import Detections

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class Evaluation:
    """box, mask: COCO stats by name; voc_map50: Matterport's mean per-image AP@0.5
    (mask IoU); results: the COCO-format detections."""

    images: int
    box: Dict[str, float]
    mask: Dict[str, float]
    voc_map50: float
    results: List[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("results")
        return data


def to_coco_results(detections: Detections, image_id: int, category_ids: Sequence[int]) -> List[dict]:
    """One image's detections as COCO result entries (bbox [x, y, w, h], RLE masks)."""
    results = []
    for i in range(len(detections)):
        y1, x1, y2, x2 = (float(v) for v in detections.rois[i])
        results.append({
            "image_id": image_id, "category_id": category_ids[int(detections.class_ids[i])],
            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(detections.scores[i]),
            "segmentation": rle_encode(detections.masks[:, :, i]),
        })
    return results


def compute_ap(gt_class_ids, gt_masks, pred_class_ids, pred_scores, pred_masks, iou_threshold=0.5) -> float:
    """Matterport's utils.compute_ap on masks: greedy matching by score, precision made
    monotone, area under the precision/recall steps."""
    order = np.argsort(pred_scores)[::-1]
    pred_class_ids, pred_masks = pred_class_ids[order], pred_masks[..., order]
    overlaps = mask_overlaps(pred_masks, gt_masks)  # [P,G]
    gt_match = -np.ones(len(gt_class_ids))
    pred_match = -np.ones(len(pred_class_ids))
    for i in range(len(pred_class_ids)):
        for j in np.argsort(overlaps[i])[::-1]:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j], pred_match[i] = i, j
                break
    hits = np.cumsum(pred_match > -1)
    precisions = np.concatenate([[0], hits / (np.arange(len(pred_match)) + 1), [0]])
    recalls = np.concatenate([[0], hits.astype(np.float64) / max(len(gt_match), 1), [1]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    steps = np.nonzero(recalls[:-1] != recalls[1:])[0] + 1
    return float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))


def mask_overlaps(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU [N,M] of bool masks [h,w,N] and [h,w,M]."""
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    a = masks1.reshape(-1, masks1.shape[-1]).astype(np.float32)
    b = masks2.reshape(-1, masks2.shape[-1]).astype(np.float32)
    intersections = a.T @ b
    union = a.sum(0)[:, None] + b.sum(0)[None, :] - intersections
    return intersections / np.maximum(union, 1e-9)


def coco_scores(gt, results: List[dict], kind: str, image_ids, category_ids,
                min_score: float = 0.5) -> Tuple[Dict[str, float], Dict[str, int]]:
    """One pycocotools evaluation of ``results`` against ``gt`` over ``image_ids`` and
    ``category_ids`` (kind "bbox" or "segm"), read two ways: COCO AP (STAT_NAMES), and
    what AP50 is made of at one operating point, COCO's own matching at IoU 0.5 (up to 100
    detections an image and class) counting the detections scored >= ``min_score``:
    {"instances": objects to find (crowds aside), "found": those matched, "false":
    detections that match no object (one on a crowd region counts as neither)}."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        instances = len(gt.getAnnIds(imgIds=list(image_ids), catIds=list(category_ids), iscrowd=False))
        return {name: 0.0 for name in STAT_NAMES}, {"instances": instances, "found": 0, "false": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        detections = gt.loadRes(results)
        evaluator = COCOeval(gt, detections, kind)
        evaluator.params.imgIds = list(image_ids)
        evaluator.params.catIds = list(category_ids)  # only the classes the model knows
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: float(max(value, 0.0)) for name, value in zip(STAT_NAMES, evaluator.stats[:6])}
    return stats, _match_counts(evaluator, min_score)


def _match_counts(evaluator, min_score: float) -> Dict[str, int]:
    """coco_scores' counts from an evaluated COCOeval's per-image matches (``evalImgs``)."""
    counts = {"instances": 0, "found": 0, "false": 0}
    every_area = evaluator.params.areaRng[0]
    for entry in evaluator.evalImgs:
        if entry is None or entry["aRng"] != every_area:
            continue
        counts["instances"] += int(np.count_nonzero(~np.asarray(entry["gtIgnore"], bool)))
        scores = np.asarray(entry["dtScores"], float)  # [D], sorted high to low
        matched = np.asarray(entry["dtMatches"])[0] > 0  # [D] at IoU 0.5 (iouThrs[0])
        kept = (scores >= min_score) & ~np.asarray(entry["dtIgnore"], bool)[0]
        counts["found"] += int(np.count_nonzero(kept & matched))
        counts["false"] += int(np.count_nonzero(kept & ~matched))
    return counts


def coco_stats(gt, results: List[dict], kind: str, image_ids, category_ids) -> Dict[str, float]:
    """COCO AP (STAT_NAMES) of ``results``: coco_scores' first half."""
    return coco_scores(gt, results, kind, image_ids, category_ids)[0]


def evaluate(model, dataset: Dataset, limit: Optional[int] = None, progress: bool = True) -> Evaluation:
    """Run ``model.detect`` over the dataset (its first ``limit`` images) and score it.

    COCO datasets are scored against their own annotations (source ids); any other
    Dataset through its COCO export (dataset_to_coco), crowd regions included.
    """
    from tqdm import tqdm

    image_ids = list(dataset.image_ids[:limit] if limit else dataset.image_ids)
    if not image_ids:
        raise DatasetError("the dataset has no images to evaluate")
    coco_gt = getattr(dataset, "coco", None)
    if coco_gt is not None:
        source_ids = [dataset.image_info[i]["id"] for i in image_ids]
        categories = [0] + [c["id"] for c in dataset.class_info[1:]]
    else:
        coco_gt = coco_api(dataset_to_coco(dataset, image_ids))
        source_ids, categories = [int(i) for i in image_ids], list(range(dataset.num_classes))
    results, aps = [], []
    for image_id, source_id in tqdm(list(zip(image_ids, source_ids)), desc="evaluating", disable=not progress):
        detections = model.detect([dataset.load_image(image_id)])[0]
        results += to_coco_results(detections, source_id, categories)
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        keep = gt_class_ids > 0  # crowds are not instances to find
        if keep.any():
            aps.append(compute_ap(gt_class_ids[keep], gt_masks[:, :, keep], detections.class_ids,
                                  detections.scores, detections.masks))
    scored = (source_ids, categories[1:])
    return Evaluation(images=len(image_ids), box=coco_stats(coco_gt, results, "bbox", *scored),
                      mask=coco_stats(coco_gt, results, "segm", *scored),
                      voc_map50=float(np.mean(aps)) if aps else 0.0, results=results)


def main(argv=None) -> int:
    from model.config_loading import setting_argument, with_settings
    from model.data.datasets_cli import add_dataset_arguments, open_dataset
    from model.detect import load_any

    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--weights", required=True, help="checkpoint .pt or Keras .h5")
    parser.add_argument("--config", help="module:ConfigClass or JSON (for .h5 weights)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--min-confidence", type=float, default=0.0,
                        help="DETECTION_MIN_CONFIDENCE while evaluating (default 0: score the whole PR curve)")
    parser.add_argument("--set", action="append", default=[], type=setting_argument, metavar="NAME=VALUE",
                        help="a Config value on top of the weights' (repeatable; VALUE as JSON, else a string), "
                             "e.g. --set IMAGE_MAX_DIM=192 to mold larger images without shrinking them")
    parser.add_argument("--output", default="detections.json", help="COCO results JSON to write")
    args = parser.parse_args(argv)
    try:
        model, _ = load_any(args.weights, args.config)
        model.config = with_settings(model.config, [("DETECTION_MIN_CONFIDENCE", args.min_confidence)] + args.set)
        dataset = open_dataset(args, subset="val", model_config=model.config)
        result = evaluate(model, dataset, args.limit)
    except (WeightsError, ConfigError, DatasetError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_text_atomic(args.output, json.dumps(result.results))
    summary_path = args.output.rsplit(".", 1)[0] + "_summary.json"
    write_text_atomic(summary_path, json.dumps(result.summary(), indent=1))
    print(f"{result.images} images")
    for kind in ("box", "mask"):
        stats = getattr(result, kind)
        print(f"  {kind:5} " + "  ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    print(f"  mAP@0.5 (Matterport, masks) {result.voc_map50:.3f}")
    print(f"wrote {args.output} and {summary_path}")
    print(f"next: python -m export.to_onnx --weights {args.weights} --output model.onnx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
