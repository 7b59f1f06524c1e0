"""Matterport's resize_image rules: scale, padding, windows, modes, and errors."""

import numpy as np
import pytest

from runtime.molding import MoldingSpec, compute_scale, denorm_boxes, mold_images, norm_boxes, resize_image

MEAN = (123.7, 116.8, 103.9)


def spec(mode="square", min_dim=800, max_dim=1024, min_scale=0):
    return MoldingSpec(min_dim, max_dim, min_scale, mode, MEAN)


@pytest.mark.parametrize("hw, expected", [
    ((400, 400), 2.0),  # up to min_dim
    ((400, 600), 1024 / 600),  # 2x would make the long side 1200 > max_dim
    ((1000, 1000), 1.0),  # never down to min_dim
    ((600, 2000), 1024 / 2000),  # long side capped at max_dim
    ((800, 1025), 1024 / 1025),
])
def test_square_scale_rule(hw, expected):
    assert compute_scale(*hw, spec()) == pytest.approx(expected)


def test_square_mode_pads_centred_and_records_window():
    image = np.full((300, 500, 3), 9, np.uint8)
    out = resize_image(image, spec(min_dim=256, max_dim=512))
    # scale max(1, 256/300)=1, no cap needed -> 300x500 padded to 512x512
    assert out.image.shape == (512, 512, 3) and out.scale == 1
    assert out.window == (106, 6, 406, 506)
    assert out.padding == ((106, 106), (6, 6), (0, 0))
    assert out.image[:106].max() == 0 and out.image[106:406, 6:506].min() == 9


def test_pad64_and_none_and_crop():
    image = np.zeros((100, 130, 3), np.uint8)
    padded = resize_image(image, spec("pad64", min_dim=64))
    assert padded.image.shape == (128, 192, 3) and padded.window == (14, 31, 114, 161)
    assert resize_image(image, spec("none")).image.shape == (100, 130, 3)
    crop = resize_image(image, spec("crop", min_dim=64), rng=np.random.default_rng(0))
    assert crop.image.shape == (64, 64, 3) and crop.crop[2:] == (64, 64)


def test_mold_images_layout_and_mean():
    image = np.full((64, 64, 3), 200, np.uint8)
    batch = mold_images([image, image], spec(min_dim=64, max_dim=64))
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == np.float32
    np.testing.assert_allclose(batch.images[0, :, 0, 0], np.float32(200 - np.array(MEAN)))
    assert batch.windows.tolist() == [[0, 0, 64, 64]] * 2


def test_mold_images_errors():
    with pytest.raises(ValueError, match="at least one image"):
        mold_images([], spec())
    with pytest.raises(ValueError, match="image 1"):
        mold_images([np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.float64)], spec())
    with pytest.raises(ValueError, match="different sizes"):
        mold_images([np.zeros((64, 64, 3), np.uint8), np.zeros((64, 128, 3), np.uint8)], spec("none"))
    with pytest.raises(ValueError, match="training only"):
        mold_images([np.zeros((64, 64, 3), np.uint8)], spec("crop"))
    with pytest.raises(ValueError, match="resize mode"):
        spec("stretch")


def test_norm_denorm_round_trip():
    boxes = np.array([[0, 0, 128, 128], [10, 20, 30, 40]])
    normalised = norm_boxes(boxes, (128, 128))
    np.testing.assert_allclose(normalised[0], [0, 0, 1, 1])
    np.testing.assert_array_equal(denorm_boxes(normalised, (128, 128)), boxes)
