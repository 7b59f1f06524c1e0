"""Odd input images are converted or rejected with a message naming the image."""

import struct
import zlib

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


# ---------------------------------------------------------------- issue 11
def png_header_only(path, width, height, bit_depth=8, colour_type=2):
    """A PNG whose header claims width x height (one empty IDAT): opening it reads only the header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [9000, 20000])  # under and over Pillow's own decompression-bomb limit
def test_huge_png_is_the_projects_error(tmp_path, side):
    """Issue 11, case 5: Pillow's DecompressionBombError escaped for 20000x20000."""
    path = png_header_only(tmp_path / "huge.png", side, side)
    with pytest.raises(ImageError, match=rf"huge.png: image is (larger than|{side}x{side} pixels, more than) "
                                         rf"{MAX_IMAGE_PIXELS}"):
        load_image(path)


def test_16bit_rgb_png_keeps_all_16_bits(tmp_path):
    """Issue 11, case 4: 16-bit RGB PNGs were read as v >> 8 (Pillow), not round(v * 255 / 65535)."""
    import cv2

    values = np.array([0, 128, 129, 385, 1000, 30000, 32767, 65407, 65408, 65535], np.uint16)
    image = np.stack([values, values[::-1], values], axis=1).reshape(1, 10, 3).repeat(8, axis=0)
    image = np.concatenate([image, image], axis=1)  # 8 x 20
    expected = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    assert (expected != image >> 8).any()  # the test can tell the two apart
    for name in ("rgb16.png", "rgb16.tif"):
        assert cv2.imwrite(str(tmp_path / name), image[:, :, ::-1])
        np.testing.assert_array_equal(load_image(tmp_path / name), expected)
    rgba = np.dstack([image, np.full(image.shape[:2], 65535, np.uint16)])
    assert cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(load_image(tmp_path / "rgba16.png"), expected)


def test_a_directory_is_not_an_image(tmp_path):
    """Issue 11, case 8: a directory was reported as "image file not found"."""
    (tmp_path / "frames.png").mkdir()
    with pytest.raises(ImageError, match="frames.png: is a directory, not an image file"):
        load_image(tmp_path / "frames.png")


def test_the_runtime_exports_what_the_readme_names():
    """Issue 11, case 12: the README writes runtime.OnnxDetector."""
    import runtime

    for name in ("OnnxDetector", "open_model", "load_image", "Detections", "ImageError", "ModelFileError"):
        assert hasattr(runtime, name), name
