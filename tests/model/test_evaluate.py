"""Matterport's mAP@0.5 on hand-made cases, and the evaluate command line."""

import json

import numpy as np
import pytest

from model import evaluate as evaluate_cli
from model.configs import ShapesConfig
from model.data.coco import coco_api
from model.evaluate import coco_scores, compute_ap
from model.maskrcnn import MaskRCNN
from model.weights.checkpoint import save_checkpoint


def masks(*boxes, size=20):
    out = np.zeros((size, size, len(boxes)), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        out[y1:y2, x1:x2, i] = True
    return out


def test_compute_ap_hand_made():
    gt = masks((0, 0, 10, 10), (10, 10, 20, 20))
    # perfect, in any score order
    assert compute_ap(np.array([1, 2]), gt, np.array([2, 1]), np.array([0.4, 0.9]), gt[..., ::-1]) == 1.0
    # one hit, one wrong class: recall 0.5 at precision 1
    assert compute_ap(np.array([1, 2]), gt, np.array([1, 1]), np.array([0.9, 0.8]), gt) == pytest.approx(0.5)
    # a false positive ranked first, then both hits: precision 2/3 at recall 1
    pred = masks((0, 15, 4, 19), (0, 0, 10, 10), (10, 10, 20, 20))
    ap = compute_ap(np.array([1, 2]), gt, np.array([1, 1, 2]), np.array([0.99, 0.9, 0.8]), pred)
    assert ap == pytest.approx(2 / 3)
    # no predictions at all
    assert compute_ap(np.array([1]), gt[..., :1], np.zeros(0, int), np.zeros(0), masks()) == 0.0


def test_coco_scores_counts_matches_at_iou_half_above_the_score():
    """Two images, boxes in COCO's [x, y, w, h]: what is found, what is false, and that a
    crowd region and a detection under the score count as neither."""
    gt = coco_api({
        "images": [{"id": 1, "height": 40, "width": 40}, {"id": 2, "height": 40, "width": 40}],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "circle"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [20, 0, 10, 10], "area": 100, "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0}]})
    detections = [
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9},  # found (IoU 0.68)
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8},  # a duplicate: false
        {"image_id": 1, "category_id": 1, "bbox": [20, 0, 10, 10], "score": 0.9},  # on the crowd: neither
        {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.7},  # wrong class: false
        {"image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "score": 0.4},  # under 0.5: neither
        {"image_id": 2, "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.95}]  # IoU 0.14: false
    def counts(*args, **kwargs):  # coco_scores' second half: what AP50 is made of
        return coco_scores(gt, *args, **kwargs)[1]

    assert counts(detections, "bbox", [1, 2], [1, 2]) == {"instances": 3, "found": 1, "false": 3}
    assert counts(detections, "bbox", [1, 2], [1, 2], min_score=0.3) == {
        "instances": 3, "found": 2, "false": 3}
    assert counts(detections, "bbox", [2], [1, 2]) == {"instances": 1, "found": 0, "false": 1}
    assert counts([], "bbox", [1, 2], [1, 2]) == {"instances": 3, "found": 0, "false": 0}


def test_evaluate_cli_on_shapes(tmp_path, capsys):
    config = ShapesConfig(TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64, POST_NMS_ROIS_INFERENCE=100)
    checkpoint = tmp_path / "shapes.pt"
    save_checkpoint(checkpoint, MaskRCNN(config))
    output = tmp_path / "dets.json"
    assert evaluate_cli.main(["--dataset", "shapes", "--weights", str(checkpoint), "--limit", "2",
                              "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "mAP@0.5" in printed and "AP50" in printed
    detections = json.loads(output.read_text())
    assert isinstance(detections, list) and all({"bbox", "segmentation", "score"} <= set(d) for d in detections)
    summary = json.loads((tmp_path / "dets_summary.json").read_text())
    assert summary["images"] == 2 and set(summary["mask"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}


def test_evaluate_cli_errors(tmp_path, capsys):
    assert evaluate_cli.main(["--weights", str(tmp_path / "none.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_evaluate_cli_set_changes_the_config_scored_and_bad_values_are_refused(tmp_path, capsys, monkeypatch):
    checkpoint = tmp_path / "shapes.pt"
    save_checkpoint(checkpoint, MaskRCNN(ShapesConfig(TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64)))
    seen = []

    def fake_evaluate(model, dataset, limit=None):
        seen.append((model.config.IMAGE_MAX_DIM, model.config.DETECTION_MIN_CONFIDENCE))
        stats = {k: 0.5 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
        return evaluate_cli.Evaluation(1, stats, stats, 0.5)

    monkeypatch.setattr(evaluate_cli, "evaluate", fake_evaluate)
    common = ["--dataset", "shapes", "--weights", str(checkpoint), "--output", str(tmp_path / "d.json")]
    assert evaluate_cli.main(common + ["--set", "IMAGE_MAX_DIM=192"]) == 0
    assert evaluate_cli.main(common) == 0
    assert seen == [(192, 0.0), (128, 0.0)]
    assert evaluate_cli.main(common + ["--set", "IMAGE_MAX_DIM=100"]) == 2
    assert "IMAGE_MAX_DIM must be a multiple of 64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_cli.main(common + ["--set", "IMAGE_MAX_DIM"])
    assert "NAME=VALUE" in capsys.readouterr().err
