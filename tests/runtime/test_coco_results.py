"""COCO results: RLE from crops equals pycocotools' encoding of the full mask, and the
results score with pycocotools."""

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from runtime.coco_results import CocoIds, coco_results, encode_mask, rle_string
from runtime.masks import InstanceMasks
from runtime.results import Detections


@pytest.mark.parametrize("box", [(0, 0, 40, 60), (5, 7, 39, 58), (10, 0, 40, 60), (0, 10, 40, 50), (3, 3, 4, 4)])
def test_rle_matches_pycocotools(box):
    rng = np.random.default_rng(sum(box))
    height, width = 40, 60
    y1, x1, y2, x2 = box
    crop = rng.random((y2 - y1, x2 - x1)) > 0.5
    full = np.zeros((height, width), bool)
    full[y1:y2, x1:x2] = crop
    expected = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
    ours = encode_mask(crop, box, (height, width))
    assert ours["size"] == expected["size"] and ours["counts"] == expected["counts"].decode()
    assert rle_string([5, 2, 100, 1000]) == mask_utils.frPyObjects({"size": [1, 1107], "counts": [5, 2, 100, 1000]},
                                                                     1, 1107)["counts"].decode()


def test_results_score_against_their_annotations(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rois = np.array([[10, 20, 50, 70], [60, 60, 90, 120]], np.int32)
    probs = np.zeros((2, 28, 28), np.float32)
    probs[:, 2:26, 2:26] = 1.0
    masks = InstanceMasks(probs, rois, (100, 130))
    detections = Detections(rois, np.array([1, 2], np.int32), np.array([0.9, 0.8], np.float32), masks)
    annotations = {
        "images": [{"id": 7, "file_name": "dir/a.png", "height": 100, "width": 130}],
        "categories": [{"id": 11, "name": "cat"}, {"id": 12, "name": "dog"}],
        "annotations": [{"id": i + 1, "image_id": 7, "category_id": 11 + i, "iscrowd": 0,
                         "segmentation": encode_mask(masks.crop(i), rois[i], (100, 130)),
                         "area": float(masks.crop(i).sum()),
                         "bbox": [float(rois[i][1]), float(rois[i][0]), float(rois[i][3] - rois[i][1]),
                                  float(rois[i][2] - rois[i][0])]} for i in range(2)]}
    (tmp_path / "gt.json").write_text(json.dumps(annotations))
    ids = CocoIds.from_annotations(str(tmp_path / "gt.json"))
    results = coco_results(detections, ids.image_id("a.png", 0), ["BG", "cat", "dog"], ids, "a.png")
    assert [r["category_id"] for r in results] == [11, 12] and results[0]["bbox"] == [20, 10, 50, 40]
    gt = COCO(str(tmp_path / "gt.json"))
    evaluation = COCOeval(gt, gt.loadRes(results), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not among the images"):
        ids.image_id("b.png", 1)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a COCO annotation file"):
        CocoIds.from_annotations(str(tmp_path / "bad.json"))
