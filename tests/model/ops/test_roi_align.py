"""crop_and_resize and pyramid_roi_align against a slow, literal reference.

The reference transcribes TensorFlow's CropAndResize CPU kernel sample by sample with
float32 scalars; randomized cases include boxes touching or outside the border,
zero-area and flipped boxes, no boxes, and crop sizes of 1.
"""

import math

import numpy as np
import pytest
import torch

from model.ops.roi_align import crop_and_resize, pyramid_roi_align, roi_levels

f32 = np.float32


def reference_crop_and_resize(image, boxes, box_indices, crop_h, crop_w):
    """image [B,C,H,W] float32 numpy; boxes [R,4]; returns [R,C,crop_h,crop_w]."""
    _, channels, height, width = image.shape
    out = np.zeros((len(boxes), channels, crop_h, crop_w), np.float32)
    for r, (y1, x1, y2, x2) in enumerate(boxes.astype(np.float32)):
        b = int(box_indices[r])
        h_scale = (y2 - y1) * f32(height - 1) / f32(crop_h - 1) if crop_h > 1 else f32(0)
        w_scale = (x2 - x1) * f32(width - 1) / f32(crop_w - 1) if crop_w > 1 else f32(0)
        for y in range(crop_h):
            in_y = (y1 * f32(height - 1) + f32(y) * h_scale if crop_h > 1
                    else f32(0.5 * (float(y1) + float(y2)) * (height - 1)))
            if in_y < 0 or in_y > height - 1:
                continue
            top, bottom = math.floor(in_y), math.ceil(in_y)
            y_lerp = in_y - f32(top)
            for x in range(crop_w):
                in_x = (x1 * f32(width - 1) + f32(x) * w_scale if crop_w > 1
                        else f32(0.5 * (float(x1) + float(x2)) * (width - 1)))
                if in_x < 0 or in_x > width - 1:
                    continue
                left, right = math.floor(in_x), math.ceil(in_x)
                x_lerp = in_x - f32(left)
                for c in range(channels):
                    tl, tr = image[b, c, top, left], image[b, c, top, right]
                    bl, br = image[b, c, bottom, left], image[b, c, bottom, right]
                    upper = tl + (tr - tl) * x_lerp
                    lower = bl + (br - bl) * x_lerp
                    out[r, c, y, x] = upper + (lower - upper) * y_lerp
    return out


def random_boxes(rng, count):
    """Normalised boxes: ordinary, flipped or partly outside, touching the border, zero-area."""
    boxes = rng.uniform(-0.3, 1.3, (count, 4)).astype(np.float32)  # some flipped, some outside
    kind = rng.integers(0, 4, count)
    ordinary = kind == 0
    ys = np.sort(rng.uniform(0, 1, (ordinary.sum(), 2)), axis=1)
    xs = np.sort(rng.uniform(0, 1, (ordinary.sum(), 2)), axis=1)
    boxes[ordinary] = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
    boxes[kind == 1] = [0.0, 0.0, 1.0, 1.0]  # touching every border
    boxes[kind == 2, 2:] = boxes[kind == 2, :2]  # zero area
    return boxes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("crop", [(1, 1), (2, 3), (7, 7)])
def test_crop_and_resize_matches_reference(seed, crop):
    rng = np.random.default_rng(seed)
    batch, channels = 2, 3
    height, width = rng.integers(1, 10, 2)
    image = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    boxes = random_boxes(rng, 12)
    box_indices = rng.integers(0, batch, len(boxes))
    ours = crop_and_resize(torch.from_numpy(image), torch.from_numpy(boxes),
                           torch.from_numpy(box_indices), *crop).numpy()
    expected = reference_crop_and_resize(image, boxes, box_indices, *crop)
    np.testing.assert_array_equal(ours, expected)  # bit for bit


def test_crop_and_resize_no_boxes():
    out = crop_and_resize(torch.zeros(1, 4, 5, 5), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 7, 7)
    assert out.shape == (0, 4, 7, 7)


def test_whole_image_box_samples_the_corners():
    image = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    out = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([0]), 5, 5)
    torch.testing.assert_close(out[0], image[0])  # corners aligned, no half-pixel shift


def reference_level(box, image_area):
    h, w = float(box[2] - box[0]), float(box[3] - box[1])
    if h * w <= 0 or math.isnan(h * w):
        return 2
    level = math.log2(math.sqrt(h * w) / (224.0 / math.sqrt(image_area)))
    return int(min(5, max(2, 4 + round(level))))  # Python round is half-to-even


def test_roi_levels():
    rng = np.random.default_rng(3)
    boxes = np.concatenate([random_boxes(rng, 200), np.zeros((3, 4), np.float32),
                            np.array([[0, 0, 0.21875, 0.21875], [0, 0, 1, 1], [0.5, 0.5, 0.4, 0.4]], np.float32)])
    ours = roi_levels(torch.from_numpy(boxes), 1024, 1024).numpy()
    expected = [reference_level(b, 1024 * 1024) for b in boxes]
    # float32 vs float64 log may differ exactly at a .5 boundary; none in these boxes
    np.testing.assert_array_equal(ours, expected)
    assert ours[-3] == 4 and ours[-2] == 5  # a 224px box -> P4, the whole image -> P5


def test_pyramid_roi_align_routes_levels_and_keeps_order():
    rng = np.random.default_rng(0)
    size = 256
    features = [torch.from_numpy(rng.standard_normal((2, 3, size // s, size // s)).astype(np.float32))
                for s in (4, 8, 16, 32)]
    boxes = torch.from_numpy(random_boxes(rng, 2 * 20).reshape(2, 20, 4))
    boxes[0, -2:] = 0.0  # zero padding, as proposals have
    pooled = pyramid_roi_align(boxes, features, [size, size], 7)
    levels = roi_levels(boxes, size, size)
    for b in range(2):
        for r in range(20):
            level = int(levels[b, r])
            expected = reference_crop_and_resize(features[level - 2].numpy(), boxes[b, r:r + 1].numpy(),
                                                 np.array([b]), 7, 7)
            np.testing.assert_array_equal(pooled[b, r:r + 1].numpy(), expected)


def test_pyramid_roi_align_gradient_reaches_features():
    torch.manual_seed(0)
    features = [torch.randn(1, 2, n, n, dtype=torch.float64, requires_grad=True) for n in (8, 4, 2, 1)]
    boxes = torch.tensor([[[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]]], dtype=torch.float64)

    def pool(*feats):
        return pyramid_roi_align(boxes, list(feats), [32, 32], 3)

    assert torch.autograd.gradcheck(pool, tuple(features))


def test_pyramid_roi_align_keeps_the_feature_dtype():
    """bfloat16 features (mixed-precision training) with float32 boxes pool to bfloat16
    values close to the float32 result."""
    rng = np.random.default_rng(1)
    features = [torch.from_numpy(rng.standard_normal((1, 4, 64 // s, 64 // s)).astype(np.float32))
                for s in (4, 8, 16, 32)]
    boxes = torch.from_numpy(random_boxes(rng, 12).reshape(1, 12, 4))
    full = pyramid_roi_align(boxes, features, [64, 64], 7)
    half = pyramid_roi_align(boxes, [f.bfloat16() for f in features], [64, 64], 7)
    assert half.dtype == torch.bfloat16
    np.testing.assert_allclose(half.float().numpy(), full.numpy(), atol=0.05)
