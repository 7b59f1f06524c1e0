"""resize_bilinear is bit-identical to scikit-image's resize as Matterport calls it."""

import numpy as np
import pytest
import skimage.transform

from runtime.resize import resize_bilinear, zoom_nearest


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


@pytest.mark.parametrize("seed", range(20))
def test_zoom_nearest_matches_scipy(seed):
    import scipy.ndimage

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 60, 2)
    scale = float(rng.choice([0.3, 0.5, 0.8533333, 1.0, 1.7, 2.0, 3.3]))
    masks = rng.random((h, w, 3)) > 0.5
    ours = zoom_nearest(masks, scale)
    theirs = scipy.ndimage.zoom(masks, [scale, scale, 1], order=0)
    assert ours.shape == theirs.shape
    # scipy leaves a last row/column empty when its float coordinate overshoots H-1
    keep = []
    for size, out in zip((h, w), ours.shape[:2]):
        step = (size - 1) / (out - 1) if out > 1 else 1.0
        keep.append(np.arange(out) * step <= size - 1)
    np.testing.assert_array_equal(ours[keep[0]][:, keep[1]], theirs[keep[0]][:, keep[1]])
