"""COCO JSON: reading (with checks and Matterport's crowd handling) and writing."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from model.data.coco import CocoDataset, DatasetError, annotation_to_mask, read_coco_json, rle_encode, write_coco_json
from model.data.dataset import shapes_dataset
from model.evaluate import evaluate
from runtime.results import Detections


@pytest.fixture()
def shapes():
    return shapes_dataset(5, 64, 80, seed=7)


def export_with_images(dataset, folder):
    data = write_coco_json(dataset, folder / "instances.json")
    for image in data["images"]:
        Image.fromarray(dataset.load_image(image["id"])).save(folder / image["file_name"])
    return data


def test_round_trip_through_pycocotools(shapes, tmp_path):
    data = export_with_images(shapes, tmp_path)
    assert {c["name"] for c in data["categories"]} == {"square", "circle", "triangle"}
    coco = CocoDataset()
    coco.load_coco(str(tmp_path / "instances.json"), str(tmp_path))
    coco.prepare()
    assert coco.num_images == 5
    for i in coco.image_ids:
        masks, class_ids = coco.load_mask(i)
        original, original_ids = shapes.load_mask(i)
        np.testing.assert_array_equal(masks, original)
        assert [coco.class_names[c] for c in class_ids] == [shapes.class_names[c] for c in original_ids]
        np.testing.assert_array_equal(coco.load_image(i), shapes.load_image(i))


class GroundTruthModel:
    """Answers detect() with the ground truth, score 1."""

    def __init__(self, dataset):
        self.dataset, self.calls = dataset, 0

    def detect(self, images):
        masks, class_ids = self.dataset.load_mask(self.calls)
        self.calls += 1
        rows = [np.nonzero(m.any(1))[0] for m in masks.transpose(2, 0, 1)]
        cols = [np.nonzero(m.any(0))[0] for m in masks.transpose(2, 0, 1)]
        rois = np.array([[r[0], c[0], r[-1] + 1, c[-1] + 1] for r, c in zip(rows, cols)], np.int32)
        return [Detections(rois, class_ids, np.ones(len(class_ids), np.float32), masks)]


def test_ground_truth_as_predictions_scores_one(shapes):
    result = evaluate(GroundTruthModel(shapes), shapes, progress=False)
    assert result.box["AP"] == pytest.approx(1.0) and result.mask["AP"] == pytest.approx(1.0)
    assert result.voc_map50 == pytest.approx(1.0)
    assert len(result.results) == sum(len(shapes.load_mask(i)[1]) for i in shapes.image_ids)


def base_json():
    return {"images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
            "categories": [{"id": 5, "name": "thing"}, {"id": 9, "name": "other"}],
            "annotations": []}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("images"), "missing or invalid 'images'"),
    (lambda d: d["annotations"].append({"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 1, 1]}),
     "annotation 3 refers to unknown image_id 2"),
    (lambda d: d["annotations"].append({"id": 4, "image_id": 1, "category_id": 6, "bbox": [0, 0, 1, 1]}),
     "annotation 4 refers to unknown category_id 6"),
    (lambda d: d["images"].append({"id": 7}), "image 7 lacks one of the fields"),
])
def test_malformed_json_names_the_problem(tmp_path, mutate, message):
    data = base_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message):
        read_coco_json(str(path))


def test_truncated_json(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text(json.dumps(base_json())[:-20])
    with pytest.raises(DatasetError, match="truncated.json: malformed or truncated JSON"):
        read_coco_json(str(path))
    with pytest.raises(DatasetError, match="not found"):
        read_coco_json(str(tmp_path / "absent.json"))


def test_crowds_rle_polygons_subsets_and_missing_files(tmp_path, caplog):
    data = base_json()
    data["images"].append({"id": 2, "file_name": "missing.png", "height": 20, "width": 30})
    full = np.zeros((20, 30), bool)
    full[5:10, 5:15] = True
    uncompressed = {"size": [20, 30], "counts": [0, 600]}  # all ones, uncompressed RLE
    data["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 5, "segmentation": [[5, 5, 15, 5, 15, 10, 5, 10]], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 9, "segmentation": rle_encode(full), "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 5, "segmentation": uncompressed, "iscrowd": 1},
        {"id": 4, "image_id": 1, "category_id": 5, "segmentation": [[1, 2]], "iscrowd": 0},  # malformed
        {"id": 5, "image_id": 1, "category_id": 9, "segmentation": [[0, 0, 0.1, 0, 0.1, 0.1]], "iscrowd": 0},  # empty
    ]
    (tmp_path / "x.json").write_text(json.dumps(data))
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    coco = CocoDataset()
    with caplog.at_level(logging.WARNING):
        coco.load_coco(str(tmp_path / "x.json"), str(tmp_path))
        coco.prepare()
        masks, class_ids = coco.load_mask(0)
    assert coco.num_images == 1 and "missing.png" in caplog.text  # skipped, named
    assert "annotation 4 has a malformed segmentation" in caplog.text
    thing, other = coco.map_source_class_id("coco.5"), coco.map_source_class_id("coco.9")
    assert class_ids.tolist() == [thing, other, -thing]  # crowd: negative id
    np.testing.assert_array_equal(masks[:, :, 1], full)
    assert masks[:, :, 2].all()

    subset = CocoDataset()
    subset.load_coco(str(tmp_path / "x.json"), str(tmp_path), class_ids=[9])
    subset.prepare()
    assert subset.class_names == ["BG", "other"] and subset.load_mask(0)[1].tolist() == [1]


# ---------------------------------------------------------------- issue 11
@pytest.mark.parametrize("bbox, expected", [
    ([-40, 30, 30, 40], (slice(0, 0), slice(0, 0))),    # wholly left of the image: nothing (was 1,200 px on the right)
    ([-10, -10, 30, 30], (slice(0, 20), slice(0, 20))),  # partly outside: the inside part (was empty)
    ([90, 90, 30, 30], (slice(90, 100), slice(90, 100))),
    ([10, 20, 5, 8], (slice(20, 28), slice(10, 15))),
])
def test_bbox_only_annotations_are_clipped_to_the_image(bbox, expected):
    mask = annotation_to_mask({"bbox": bbox}, 100, 100)
    want = np.zeros((100, 100), bool)
    want[expected] = True
    np.testing.assert_array_equal(mask, want)


@pytest.mark.parametrize("ann", [
    {"segmentation": [[1, 2, "a", 4, 5, 6]]},
    {"segmentation": [[1, 2, None, 4, 5, 6]]},
    {"segmentation": [[1, 2, float("nan"), 4, 5, 6]]},
    {"segmentation": [[1, 2, True, 4, 5, 6]]},
    {"segmentation": {"size": [20, 30], "counts": "garbage"}},
    {"segmentation": {"size": [10, 10], "counts": [0, 100]}},  # an RLE of another image size
    {"bbox": [1, "x", 3, 4]},
    {"bbox": [1, 2, 3]},
])
def test_malformed_geometry_is_none(ann):
    assert annotation_to_mask(ann, 20, 30) is None


def test_non_numeric_polygon_is_skipped_with_a_warning(tmp_path, caplog):
    """Issue 11, case 10: it stopped training with "could not convert string to float"."""
    data = base_json()
    data["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 5, "segmentation": [[5, 5, 15, 5, 15, 10, 5, 10]], "iscrowd": 0},
        {"id": 7, "image_id": 1, "category_id": 5, "segmentation": [[5, 5, "a", 5, 15, 10]], "iscrowd": 0},
    ]
    (tmp_path / "x.json").write_text(json.dumps(data))
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    coco = CocoDataset()
    coco.load_coco(str(tmp_path / "x.json"), str(tmp_path))
    coco.prepare()
    with caplog.at_level(logging.WARNING):
        masks, class_ids = coco.load_mask(0)
    assert masks.shape[2] == 1 and "a.png: annotation 7 has a malformed segmentation; skipped" in caplog.text
