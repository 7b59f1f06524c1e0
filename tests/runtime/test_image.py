"""Odd input images are converted or rejected with a message naming the image."""

import numpy as np
import pytest
from PIL import Image

from runtime.image import MAX_IMAGE_PIXELS, ImageError, load_image, to_rgb_uint8


def test_rgb_uint8_passes_through():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(image), image)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1)])
def test_grayscale_is_replicated(shape):
    gray = np.arange(600, dtype=np.uint8).reshape(shape)
    rgb = to_rgb_uint8(gray)
    assert rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])
    np.testing.assert_array_equal(rgb[:, :, 1], gray.reshape(20, 30))


def test_rgba_drops_alpha():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 0] = 7
    out = to_rgb_uint8(rgba)
    assert out.shape == (10, 10, 3) and (out[..., 0] == 7).all()


def test_16bit_is_scaled():
    image = np.array([[0, 257, 32896, 65535]], np.uint16).repeat(8, 0).repeat(2, 1)
    assert to_rgb_uint8(image)[0, ::2, 0].tolist() == [0, 1, 128, 255]


def test_int_in_range_accepted_out_of_range_rejected():
    assert to_rgb_uint8(np.full((8, 8, 3), 200, np.int64)).dtype == np.uint8
    with pytest.raises(ImageError, match="outside 0..255"):
        to_rgb_uint8(np.full((8, 8, 3), 300, np.int32))


@pytest.mark.parametrize("image, message", [
    (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
    (np.zeros((10, 10, 3), np.float32), "dtype float32"),
    (np.zeros((10, 10, 2), np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    ([[1, 2]], "numpy array"),
])
def test_bad_images_are_rejected(image, message):
    with pytest.raises(ImageError, match=message):
        to_rgb_uint8(image, name="img.png")


def test_huge_image_is_rejected_before_any_work():
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (MAX_IMAGE_PIXELS // 4096 + 1, 4096, 3), (0, 0, 1))
    with pytest.raises(ImageError, match="downscale"):
        to_rgb_uint8(huge)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16", "LA"])
def test_load_image_file_modes(tmp_path, mode):
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    Image.new(mode, (12, 9)).save(path)
    image = load_image(path)
    assert image.shape == (9, 12, 3) and image.dtype == np.uint8


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match="corrupt.jpg: cannot read image"):
        load_image(corrupt)
