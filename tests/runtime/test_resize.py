"""resize_bilinear is bit-identical to scikit-image's resize as Matterport calls it."""

import numpy as np
import pytest
import skimage.transform

from runtime.resize import resize_bilinear


def skimage_resize(image, shape, preserve_range):
    return skimage.transform.resize(image, shape, order=1, mode="constant", preserve_range=preserve_range,
                                    anti_aliasing=False)


@pytest.mark.parametrize("seed", range(40))
def test_matches_skimage_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 50, 2)
    shape = tuple(rng.integers(1, 80, 2))
    cases = [
        (rng.integers(0, 256, (h, w, 3)).astype(np.uint8), True),  # molding an image
        (np.full((h, w, 3), rng.integers(1, 255), np.uint8), True),  # flat: exposes summation order
        (rng.random((h, w)).astype(np.float32), False),  # unmolding a mask
        ((rng.random((h, w)) * 0.5 + 0.3).astype(np.float32), False),  # min > 0: clipping rule
    ]
    for image, preserve in cases:
        expected = skimage_resize(image, shape, preserve)
        ours = resize_bilinear(image, shape)
        assert ours.dtype == expected.dtype
        np.testing.assert_array_equal(ours, expected)


def test_identity_and_bad_target():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(resize_bilinear(image, (3, 4)), image)
    with pytest.raises(ValueError, match="at least 1x1"):
        resize_bilinear(image, (0, 4))
