"""The out-of-distribution shapes set: written once, deterministic, loads as COCO."""

import json

import numpy as np
import pytest
import torch

from benchmarks import shapes_ood
from model.data.coco import CocoDataset


def test_written_once_deterministic_and_loadable(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert shapes_ood.main(["--out", str(a), "--count", "6", "--seed", "3"]) == 0
    assert "next: python -m model.evaluate --dataset coco --data" in capsys.readouterr().out
    path = shapes_ood.write_set(str(b), 6, 3)
    assert (a / "instances.json").read_text() == open(path).read()
    assert (a / "0004.png").read_bytes() == (b / "0004.png").read_bytes()
    stamp = (a / "0004.png").stat().st_mtime_ns
    shapes_ood.write_set(str(a), 6, 3)  # the same set again: kept, not rewritten
    assert (a / "0004.png").stat().st_mtime_ns == stamp

    data = json.loads(open(path).read())
    assert {i["background"] for i in data["images"]} <= set(shapes_ood.BACKGROUNDS)
    assert data["info"]["count"] == 6 and [c["name"] for c in data["categories"]] == ["square", "circle", "triangle"]
    dataset = CocoDataset()
    dataset.load_coco(path, str(b))
    dataset.prepare()
    assert dataset.num_images == 6 and dataset.class_names == ["BG", "square", "circle", "triangle"]
    frames = [dataset.load_image(i).shape[:2] for i in dataset.image_ids]
    assert any(h != w for h, w in frames)
    for i in dataset.image_ids:
        masks, class_ids = dataset.load_mask(i)
        assert masks.shape[:2] == dataset.load_image(i).shape[:2] and len(class_ids) == masks.shape[-1] >= 1


def test_masks_cover_the_drawn_shapes():
    for seed in range(4):
        image, masks, class_ids, hidden, texture = shapes_ood.render(np.random.default_rng(seed))
        assert texture in shapes_ood.BACKGROUNDS
        assert image.dtype == np.uint8 and masks.shape[:2] == image.shape[:2] and len(class_ids) == len(hidden)
        assert set(class_ids) <= {1, 2, 3} and not (masks.sum(axis=-1) > 1).any()
        for k in np.nonzero(~hidden)[0]:
            inside = image[masks[:, :, k]].astype(float)
            ring = masks[:, :, k] ^ _dilate(masks[:, :, k], 3)  # just outside the shape
            if ring.any() and inside.size:  # the shape differs from what surrounds it
                assert np.abs(np.median(inside, axis=0) - np.median(image[ring].astype(float), axis=0)).max() > 15


def _dilate(mask, steps):
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def test_each_factor_can_be_drawn_as_the_standard_set_does():
    rng = np.random.default_rng
    for seed in range(3):
        image, *_ = shapes_ood.render(rng(seed), frozenset({"frame"}))
        assert image.shape == (128, 128, 3)
        # no texture, noise or anti-aliasing: a plain background and flat shapes, nothing in between
        image, masks, class_ids, hidden, texture = shapes_ood.render(rng(seed),
                                                                     frozenset({"texture", "noise", "antialias"}))
        assert texture == "plain"
        assert len(np.unique(image.reshape(-1, 3), axis=0)) <= len(class_ids) + 1
        _, soft_masks, *_ = shapes_ood.render(rng(seed), frozenset({"texture", "noise"}))
        assert soft_masks.shape == masks.shape and (soft_masks != masks).mean() < 0.01  # the same shapes
        # the default draws tilted, anti-aliased shapes: far more than one colour per shape
        image, _, class_ids, *_ = shapes_ood.render(rng(seed))
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10 * (len(class_ids) + 1)
    # a hard-edged square of side 24: its box is 24 wide upright, 24 * (cos + sin) = 29.4 tilted 15 degrees
    for angle, low, high in ((0.0, 24, 26), (np.radians(15), 29, 31)):  # PIL fills edge pixels
        square = shapes_ood._coverage(0, 40.0, 40.0, 12.0, angle, 80, 80, 1) >= 0.5
        assert low <= np.count_nonzero(square.any(axis=0)) <= high and set(np.unique(square)) == {False, True}
    with pytest.raises(ValueError, match="unknown factors"):
        shapes_ood.write_set("/nonexistent", 1, 0, ["colour"])


def test_by_background_scores_each_texture_apart(tmp_path):
    dataset = CocoDataset()
    dataset.load_coco(shapes_ood.write_set(str(tmp_path), 8, 0), str(tmp_path))
    dataset.prepare()
    textures = [dataset.coco.imgs[info["id"]]["background"] for info in dataset.image_info]
    found = textures[0]  # perfect detections on this texture's images (of the first 6), none elsewhere
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
                "bbox": a["bbox"], "score": 1.0}
               for a in dataset.coco.dataset["annotations"]
               if textures[a["image_id"]] == found and not a["iscrowd"] and a["image_id"] < 6]
    scores = shapes_ood.by_background(dataset, results, limit=6)
    assert {t: s["images"] for t, s in scores.items()} == {t: textures[:6].count(t) for t in set(textures[:6])}
    assert list(scores) == sorted(scores) and len(scores) > 1
    for texture, s in scores.items():
        assert s["mask"]["AP50"] == (1.0 if texture == found else 0.0)
        shapes = sum(1 for a in dataset.coco.dataset["annotations"] if not a["iscrowd"] and a["image_id"] < 6
                     and textures[a["image_id"]] == texture)
        assert s["counts"] == {"instances": shapes, "found": shapes if texture == found else 0, "false": 0}
    assert f"| {found} | {scores[found]['images']} | 1.000 |" in shapes_ood.background_table(scores)


def test_factor_report(tmp_path, capsys):
    from benchmarks import ood_factors
    from model.configs import ShapesConfig
    from model.maskrcnn import MaskRCNN
    from model.weights.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = ShapesConfig(TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64, POST_NMS_ROIS_INFERENCE=100)
    save_checkpoint(tmp_path / "shapes.pt", MaskRCNN(config))
    assert ood_factors.main(["--weights", str(tmp_path / "shapes.pt"), "--count", "2", "--factors", "frame",
                             "--sets", str(tmp_path / "sets"), "--output", str(tmp_path / "report")]) == 0
    assert "| frame |" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["scores"]) == {"(none)", "frame"}
    by_background = report["scores"]["(none)"]["by_background"]  # the 2 images' textures, scored apart
    assert sum(s["images"] for s in by_background.values()) == 2 and set(by_background) <= set(shapes_ood.BACKGROUNDS)
    frames = json.loads((tmp_path / "sets" / "without_frame" / "instances.json").read_text())
    assert frames["info"]["without"] == ["frame"]
    assert {(i["height"], i["width"]) for i in frames["images"]} == {(128, 128)}
