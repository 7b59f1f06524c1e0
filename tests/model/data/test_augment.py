"""Built-in augmentations: masks stay on the pixels they label, seeded, resumable."""

import dataclasses
import sys
import types

import numpy as np
import pytest

from model.configs import ShapesConfig
from model.data.augment import (
    ColorJitter,
    Compose,
    Flip,
    GaussianBlur,
    GaussianNoise,
    ImgaugAugmentation,
    ScaleJitter,
    as_augmentation,
    policy,
)
from model.data.dataset import shapes_dataset
from model.data.pipeline import TrainingData, extract_bboxes, load_image_targets

GEOMETRIC = [Flip(1.0, 0.0), Flip(0.0, 1.0), ScaleJitter(0.5, 0.7, 1.0, 1.0), ScaleJitter(1.3, 1.6, 1.3, 1.0),
             ScaleJitter(0.8, 1.2, 1.5, 1.0)]
PHOTOMETRIC = [ColorJitter(probability=1.0), GaussianNoise(8.0, 1.0), GaussianBlur(1.0, 1.0)]


def planted(height=64, width=80):
    """A white 16x20 block at a known place on black, and its mask, plus an empty mask."""
    image = np.zeros((height, width, 3), np.uint8)
    masks = np.zeros((height, width, 2), bool)
    image[20:36, 30:50] = 255
    masks[20:36, 30:50, 0] = True
    return image, masks


@pytest.mark.parametrize("transform", GEOMETRIC, ids=repr)
def test_geometric_moves_mask_with_the_shape(transform):
    image, masks = planted()
    for seed in range(5):
        out, out_masks = transform(image, masks, np.random.default_rng(seed))
        assert out.shape == image.shape and out_masks.shape == masks.shape and out_masks.dtype == bool
        bright = out.mean(axis=2) > 127
        inside = out_masks[:, :, 0]
        if inside.any():  # the block may be cropped away by a zoom-in
            # the mask covers the moved block: pixels agree except along its resampled edge
            assert (bright == inside).mean() > 0.97
            assert out[inside].mean() > 200
        else:
            assert bright.sum() < 10
        assert not out_masks[:, :, 1].any()


def test_flip_exact():
    image, masks = planted()
    out, out_masks = Flip(1.0, 1.0)(image, masks, np.random.default_rng(0))
    assert np.array_equal(out, image[::-1, ::-1]) and np.array_equal(out_masks, masks[::-1, ::-1])
    box = extract_bboxes(out_masks)[0]
    assert list(box) == [64 - 36, 80 - 50, 64 - 20, 80 - 30]


def test_scale_jitter_box_scales_about_the_factor():
    image, masks = planted()
    for seed in range(5):
        _, out_masks = ScaleJitter(0.5, 0.5, 1.0, 1.0)(image, masks, np.random.default_rng(seed))
        y1, x1, y2, x2 = extract_bboxes(out_masks)[0]
        assert (y2 - y1, x2 - x1) == (8, 10)


@pytest.mark.parametrize("transform", PHOTOMETRIC, ids=repr)
def test_photometric_keeps_masks_and_changes_pixels(transform):
    image, masks = planted()
    image = image // 2 + 40  # room to move both ways
    out, out_masks = transform(image, masks, np.random.default_rng(3))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out_masks is masks or np.array_equal(out_masks, masks)
    assert not np.array_equal(out, image)
    # the block is still brighter than the background
    assert out[masks[:, :, 0]].mean() > out[~masks[:, :, 0]].mean() + 30


@pytest.mark.parametrize("name", ["flip", "default"])
def test_policy_deterministic_for_a_seed(name):
    image, masks = planted()
    aug = policy(name)
    a = aug(image, masks, np.random.default_rng([1, 2, 3]))
    b = aug(image, masks, np.random.default_rng([1, 2, 3]))
    c = aug(image, masks, np.random.default_rng([1, 2, 4]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    if name == "default":
        assert not np.array_equal(a[0], c[0])


def test_policy_names():
    assert policy("none") is None and as_augmentation(None) is None
    assert isinstance(policy("default"), Compose)
    with pytest.raises(ValueError, match="unknown augmentation policy 'strong'.*none, flip, default"):
        policy("strong")
    with pytest.raises(TypeError, match="policy name, a callable or an imgaug augmenter"):
        as_augmentation(3)


def test_training_data_with_default_policy_is_reproducible_and_consistent():
    config = dataclasses.replace(ShapesConfig(), USE_MINI_MASK=False)
    dataset = shapes_dataset(6, 128, 128, seed=4)
    data = TrainingData(dataset, config, seed=5, samples_per_epoch=6, flip=False, augmentation="default")
    again = TrainingData(dataset, config, seed=5, samples_per_epoch=6, flip=False, augmentation="default")
    data.set_epoch(3)
    again.set_epoch(3)  # a resumed run builds its data anew and starts at the epoch
    for position in range(6):
        a, b = data[position], again[position]
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        n = int((a.gt_class_ids > 0).sum())
        masks = a.gt_masks[:n].transpose(1, 2, 0)
        assert np.array_equal(extract_bboxes(masks), a.gt_boxes[:n].astype(np.int32))  # boxes from masks


def test_augmented_targets_find_the_shape_where_it_moved():
    """Through the pipeline: each ground-truth mask lies on pixels of its shape's colour."""
    config = dataclasses.replace(ShapesConfig(), USE_MINI_MASK=False)
    dataset = shapes_dataset(8, 128, 128, seed=9)
    geometric = Compose((Flip(0.5, 0.5), ScaleJitter()))
    for image_id in range(8):
        t = load_image_targets(dataset, config, image_id, np.random.default_rng(image_id), flip=False,
                               augmentation=geometric)
        colors = [np.array(color) for _, color, _ in dataset.image_info[image_id]["shapes"]]
        for i in range(len(t.class_ids)):
            pixels = t.image[t.masks[:, :, i]].astype(int)  # [P,3]
            if len(pixels) < 30:
                continue
            # nearly all of the mask's pixels have the colour of one shape (edges are resampled)
            assert max((np.abs(pixels - c).sum(axis=1) <= 6).mean() for c in colors) > 0.6


class FakeImgaug:
    """The imgaug calls the adapter makes: deepcopy, seed_, to_deterministic, augment_image
    with hooks; this one flips left-right and brightens the image (not the masks)."""

    def __init__(self):
        self.seed = None

    def deepcopy(self):
        return FakeImgaug()

    def seed_(self, value):
        self.seed = value

    def to_deterministic(self):
        return self

    def augment_image(self, image, hooks=None):
        flipped = image[:, ::-1]  # as Fliplr: geometric, always active
        if hooks is None or hooks.activator(image, Multiply(), [], True):
            return np.clip(flipped.astype(int) + 10, 0, 255).astype(np.uint8)
        return flipped


class Multiply:  # an imgaug colour augmenter's class name
    pass


def test_imgaug_adapter(monkeypatch):
    hooks = types.SimpleNamespace
    monkeypatch.setitem(sys.modules, "imgaug", types.SimpleNamespace(HooksImages=lambda activator: hooks(
        activator=activator)))
    augmentation = as_augmentation(FakeImgaug())
    assert isinstance(augmentation, ImgaugAugmentation)
    image, masks = planted()
    out, out_masks = augmentation(image, masks, np.random.default_rng(0))
    assert np.array_equal(out_masks, masks[:, ::-1])  # masks flipped, not brightened
    assert out[0, 0, 0] == 10 and out_masks.dtype == bool
