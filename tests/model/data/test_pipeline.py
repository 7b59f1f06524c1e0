"""Training inputs: molding like inference, boxes from masks, RPN targets, batching."""

import logging

import numpy as np
import pytest
import torch

from model.data.dataset import Dataset, shapes_dataset
from model.data.pipeline import (
    DataError,
    TrainingData,
    build_rpn_targets,
    extract_bboxes,
    load_image_targets,
    minimize_masks,
)
from runtime.molding import resize_image


def test_extract_bboxes():
    masks = np.zeros((10, 12, 2), bool)
    masks[2:5, 3:9, 0] = True
    assert extract_bboxes(masks).tolist() == [[2, 3, 5, 9], [0, 0, 0, 0]]


def test_minimize_masks_keeps_the_shape():
    masks = np.zeros((40, 40, 1), bool)
    masks[10:30, 10:20, 0] = True
    mini = minimize_masks(np.array([[10, 10, 30, 20]]), masks, (8, 8))
    assert mini.shape == (8, 8, 1) and mini.all()  # the box is all mask


@pytest.fixture(scope="module")
def shapes():
    return shapes_dataset(6, 96, 160, seed=3)


def test_targets_are_molded_like_inference(shapes, tiny_config):
    rng = np.random.default_rng(0)
    targets = load_image_targets(shapes, tiny_config, 0, rng, flip=False)
    expected = resize_image(shapes.load_image(0), tiny_config.molding_spec())
    np.testing.assert_array_equal(targets.image, expected.image)
    assert targets.window == expected.window
    full = load_image_targets(shapes, tiny_config.__class__(USE_MINI_MASK=False), 0, rng, flip=False)
    np.testing.assert_array_equal(full.boxes, extract_bboxes(full.masks))  # boxes come from masks
    assert targets.masks.shape[:2] == tiny_config.MINI_MASK_SHAPE
    assert targets.active_class_ids.tolist() == [1, 1, 1, 1][:tiny_config.NUM_CLASSES + 1][:4]


def test_flip_and_augmentation_hook(shapes, tiny_config):
    config = tiny_config.__class__(USE_MINI_MASK=False)
    plain = load_image_targets(shapes, config, 1, np.random.default_rng(0), flip=False)
    calls = []

    def flip_all(image, masks, rng):
        calls.append(rng)
        return image[:, ::-1], masks[:, ::-1]

    flipped = load_image_targets(shapes, config, 1, np.random.default_rng(0), flip=False, augmentation=flip_all)
    assert calls and np.array_equal(flipped.image, plain.image[:, ::-1])
    np.testing.assert_array_equal(flipped.masks, plain.masks[:, ::-1])

    def crop(image, masks, rng):
        return image[:10], masks[:10]

    with pytest.raises(DataError, match="augmentation changed"):
        load_image_targets(shapes, config, 1, np.random.default_rng(0), augmentation=crop)


def test_rpn_targets_hand_made(tiny_config):
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 20], [50, 50, 60, 60], [0, 0, 9, 10]], np.float64)
    gt = np.array([[0, 0, 10, 10]])
    match, bbox = build_rpn_targets(anchors, np.array([1]), gt, tiny_config, np.random.default_rng(0))
    # IoU: 1.0, 0.5, 0.0, 0.9 -> positive, neutral, negative, positive
    assert match.tolist() == [1, 0, -1, 1]
    np.testing.assert_allclose(bbox[0], [0, 0, 0, 0])
    # anchor 3 (height 9) -> gt (height 10): dy = (5 - 4.5) / 9, dh = log(10/9), / std (0.1, 0.1, 0.2, 0.2)
    np.testing.assert_allclose(bbox[1], [(0.5 / 9) / 0.1, 0, np.log(10 / 9) / 0.2, 0], rtol=1e-6)
    assert not bbox[2:].any()


def test_rpn_targets_crowd_and_best_anchor(tiny_config):
    anchors = np.array([[0, 0, 10, 10], [30, 30, 40, 40], [100, 100, 110, 110]], np.float64)
    gt = np.array([[0, 0, 4, 4], [29, 29, 41, 41]])  # first GT overlaps little: its best anchor is still positive
    match, _ = build_rpn_targets(anchors, np.array([1, -2]), gt, tiny_config, np.random.default_rng(0))
    assert match.tolist() == [1, 0, -1]  # the crowd-covered anchor is not a negative


class Broken(Dataset):
    """Image 0 cannot be read, image 1 has no instances, image 2 is fine."""

    def __init__(self):
        super().__init__()
        self.add_class("b", 1, "thing")
        for i in range(3):
            self.add_image("b", image_id=i, path=f"/nowhere/{i}.png")
        self.prepare()

    def load_image(self, image_id):
        if image_id == 0:
            return super().load_image(image_id)  # file does not exist
        return np.full((64, 64, 3), 100, np.uint8)

    def load_mask(self, image_id):
        if image_id == 1:
            return super().load_mask(image_id)
        mask = np.zeros((64, 64, 1), bool)
        mask[10:30, 10:30] = True
        return mask, np.array([1], np.int32)


def test_bad_samples_are_skipped_with_a_warning(tiny_config, caplog):
    config = tiny_config.__class__(NUM_CLASSES=2)
    data = TrainingData(Broken(), config, seed=0, samples_per_epoch=3)
    with caplog.at_level(logging.WARNING):
        samples = [data[i] for i in range(3)]
    assert "/nowhere/0.png" in caplog.text
    assert all(s.gt_class_ids[0] == 1 for s in samples)  # every sample is image 2


def test_loader_workers_do_not_change_the_data(shapes, tiny_config):
    data = TrainingData(shapes, tiny_config, seed=5, samples_per_epoch=4)
    data.set_epoch(3)
    batches = [list(torch.utils.data.DataLoader(data, batch_size=2, num_workers=w)) for w in (0, 2)]
    for a, b in zip(*batches):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert data[0].images.shape == (3, 128, 128) and data[0].gt_masks.shape[1:] == tiny_config.MINI_MASK_SHAPE
