"""Mask pasting: the fast paste against Matterport's exact one, and lazy instance masks."""

import numpy as np
import pytest
import skimage.transform

from runtime.masks import InstanceMasks, bilinear_matrix, paste_exact, paste_fast
from runtime.postprocess import unmold_detections


def blob_masks(count, seed=0):
    """Smooth 28x28 probabilities, like a mask head's: a sigmoid of the distance to a centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    masks = []
    for _ in range(count):
        cy, cx, radius, softness = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(3, 12), rng.uniform(0.5, 3)
        masks.append(1 / (1 + np.exp(-(radius - np.hypot(yy - cy, xx - cx)) / softness)))
    return np.stack(masks).astype(np.float32)


def test_bilinear_matrix_is_scikit_images_resize():
    rng = np.random.default_rng(1)
    for n_out in (1, 5, 28, 57, 400):
        column = rng.random(28)
        expected = skimage.transform.resize(column[:, None], (n_out, 1), order=1, mode="constant",
                                            anti_aliasing=False, clip=False)[:, 0]
        np.testing.assert_allclose(bilinear_matrix(28, n_out) @ column, expected, atol=1e-6)
    assert bilinear_matrix(28, 57) is bilinear_matrix(28, 57)  # cached


def test_fast_paste_agrees_with_the_exact_one():
    rng = np.random.default_rng(2)
    masks = blob_masks(60)
    differing = total = 0
    for mask in masks:
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        fast, exact = paste_fast(mask, height, width), paste_exact(mask, height, width)
        assert fast.shape == exact.shape == (height, width) and fast.dtype == bool
        union = (fast | exact).sum()
        assert union == 0 or (fast & exact).sum() / union >= 0.99
        differing += int((fast != exact).sum())
        total += fast.size
    assert differing / total < 1e-4


def test_fast_paste_clips_like_scikit_image():
    """A mask entirely above the threshold fills its box (scikit-image clips the zero-padded
    border back to the input's minimum); one entirely below stays empty."""
    full = np.full((28, 28), 0.9, np.float32)
    assert paste_fast(full, 50, 70).all() and paste_exact(full, 50, 70).all()
    assert not paste_fast(np.full((28, 28), 0.3, np.float32), 50, 70).any()
    assert paste_fast(full, 20, 20, threshold=0.95).sum() == 0


def test_instance_masks_behave_like_the_full_array():
    rois = np.array([[10, 20, 60, 90], [0, 0, 30, 30], [70, 100, 100, 160]], np.int32)
    masks = InstanceMasks(blob_masks(3), rois, (100, 160))
    full = np.asarray(masks)
    assert masks.shape == full.shape == (100, 160, 3) and full.dtype == bool
    for i, (y1, x1, y2, x2) in enumerate(rois):
        np.testing.assert_array_equal(masks[:, :, i], full[:, :, i])
        np.testing.assert_array_equal(masks.crop(i), full[y1:y2, x1:x2, i])
        assert full[:, :, i].sum() == masks.crop(i).sum()  # nothing outside the box
    assert masks[:, :, -1].sum() == full[:, :, 2].sum()
    with pytest.raises(IndexError):
        masks[:, :, 3]
    np.testing.assert_array_equal(masks[5:50, :, 1:], full[5:50, :, 1:])


def test_unmold_modes_and_thresholds():
    boxes = np.array([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.9], [0.0, 0.0, 0.2, 0.2]], np.float32)
    scores = np.array([0.95, 0.6, 0.3], np.float32)
    masks = blob_masks(3, seed=4)
    args = (3, boxes, np.array([1, 2, 1]), scores, masks, (0, 0, 128, 128), (128, 128), (128, 128))
    exact = unmold_detections(*args)
    lazy = unmold_detections(*args, mask_mode="lazy", paste="fast")
    assert isinstance(lazy.masks, InstanceMasks) and not lazy.masks._crops  # nothing pasted yet
    np.testing.assert_array_equal(lazy.rois, exact.rois)
    inter = (np.asarray(lazy.masks) & exact.masks).sum()
    assert inter / (np.asarray(lazy.masks) | exact.masks).sum() > 0.99
    kept = unmold_detections(*args, score_threshold=0.5)
    assert kept.scores.tolist() == pytest.approx([0.95, 0.6]) and kept.masks.shape == (128, 128, 2)
    tight = unmold_detections(*args, mask_threshold=0.9)
    assert tight.masks.sum() < exact.masks.sum()
    with pytest.raises(ValueError, match="mask mode"):
        unmold_detections(*args, mask_mode="boxes")
    with pytest.raises(ValueError, match="paste"):
        unmold_detections(*args, paste="quick")
