"""RoI pooling with Matterport's semantics: TensorFlow ``crop_and_resize`` on FPN levels.

Shapes: B batch, C channels, H, W feature size, R boxes, ph, pw pooled size.
Boxes are normalised (y1, x1, y2, x2); y maps to feature row y * (H - 1).

``crop_and_resize`` is the one implementation of the bilinear crop (used for RoI
pooling and for training mask targets). ``pyramid_roi_align`` is a ``torch.library``
custom op (``mrcnn::pyramid_roi_align``): eager code runs the function below, and the
exporter (``export/``) gives it a target-specific ONNX lowering, so ``forward`` has no
export branches. tests/model/ops/ compares both with a slow per-sample reference.
"""

from __future__ import annotations

from typing import List, Sequence

import torch

_LEVELS = (2, 3, 4, 5)


def crop_and_resize(
    image: torch.Tensor, boxes: torch.Tensor, box_indices: torch.Tensor, crop_h: int, crop_w: int
) -> torch.Tensor:
    """TensorFlow ``tf.image.crop_and_resize(method="bilinear")`` in NCHW.

    image: float [B,C,H,W]; boxes: float [R,4] normalised; box_indices: int [R] into B.
    Returns float [R,C,crop_h,crop_w]. One bilinear sample per output cell, corners
    aligned: row i samples y1*(H-1) + i*(y2-y1)*(H-1)/(crop_h-1) (the box centre when
    crop_h == 1). Samples outside [0, H-1] x [0, W-1] are 0. The arithmetic is float32
    in TensorFlow's order, so results agree with it bit for bit.
    """
    batch, channels, height, width = image.shape
    num = boxes.shape[0]
    in_y, valid_y = _sample_coords(boxes[:, 0], boxes[:, 2], height, crop_h)  # [R,ch]
    in_x, valid_x = _sample_coords(boxes[:, 1], boxes[:, 3], width, crop_w)  # [R,cw]
    top, bottom, y_lerp = _neighbours(in_y, height)
    left, right, x_lerp = _neighbours(in_x, width)

    rows = image.permute(0, 2, 3, 1).reshape(batch * height * width, channels)  # [B*H*W,C]
    base = box_indices.long().view(num, 1, 1) * (height * width)
    shape = (num, crop_h, crop_w, channels)

    def corner(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        index = base + ys.view(num, crop_h, 1) * width + xs.view(num, 1, crop_w)  # [R,ch,cw]
        return rows.index_select(0, index.reshape(-1)).view(shape)  # [R,ch,cw,C]

    # TensorFlow's lerps, top + (bottom - top) * t, computed in place on the gathered
    # corners (fresh tensors, so autograd can differentiate through the in-place ops).
    x_lerp = x_lerp.view(num, 1, crop_w, 1)
    y_lerp = y_lerp.view(num, crop_h, 1, 1)
    top_left = corner(top, left)
    upper = corner(top, right).sub_(top_left).mul_(x_lerp).add_(top_left)
    bottom_left = corner(bottom, left)
    lower = corner(bottom, right).sub_(bottom_left).mul_(x_lerp).add_(bottom_left)
    crops = lower.sub_(upper).mul_(y_lerp).add_(upper)  # [R,ch,cw,C]

    valid = (valid_y.view(num, crop_h, 1) & valid_x.view(num, 1, crop_w)).unsqueeze(-1)
    crops = crops.masked_fill_(~valid, 0.0)
    return crops.permute(0, 3, 1, 2).contiguous()  # [R,C,ch,cw]


def _sample_coords(lo: torch.Tensor, hi: torch.Tensor, size: int, steps: int):
    """Sample positions [R,steps] in feature pixels along one axis and their validity."""
    if steps > 1:
        scale = (hi - lo) * float(size - 1) / float(steps - 1)  # [R]
        index = torch.arange(steps, dtype=lo.dtype, device=lo.device)
        coords = lo.unsqueeze(1) * float(size - 1) + index * scale.unsqueeze(1)
    else:  # TensorFlow computes the centre in double precision here
        coords = (0.5 * (lo.double() + hi.double()) * (size - 1)).to(lo.dtype).unsqueeze(1)
    valid = (coords >= 0) & (coords <= size - 1)
    return coords, valid


def _neighbours(coords: torch.Tensor, size: int):
    """Lower and upper integer neighbours (clamped into range) and the lerp weight."""
    lower = torch.floor(coords)
    lerp = coords - lower
    upper = torch.ceil(coords)
    lower = lower.clamp(0, size - 1).long()
    upper = upper.clamp(0, size - 1).long()
    return lower, upper, lerp


def roi_levels(boxes: torch.Tensor, image_height: int, image_width: int) -> torch.Tensor:
    """FPN level (2..5) of each normalised box [...,4] -> int64 [...].

    level = 4 + round(log2(sqrt(h*w) / (224 / sqrt(image_area)))), clamped to [2, 5],
    with Matterport's round half to even. Zero or negative areas (log of 0 or NaN) give
    level 2, as TensorFlow's integer cast of -inf/NaN does on x86.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    image_area = torch.tensor(float(image_height * image_width), dtype=boxes.dtype)
    ratio = torch.sqrt(height * width) / (224.0 / torch.sqrt(image_area))
    level = torch.log(ratio) / torch.log(torch.tensor(2.0, dtype=boxes.dtype))
    level = 4 + torch.round(level)
    level = torch.where(torch.isnan(level), torch.full_like(level, 2.0), level)
    return level.clamp(2, 5).long()


def pyramid_roi_align_reference(
    boxes: torch.Tensor, features: Sequence[torch.Tensor], image_shape: Sequence[int], pool_size: int
) -> torch.Tensor:
    """Eager implementation of ``mrcnn::pyramid_roi_align`` (see :func:`pyramid_roi_align`)."""
    batch, num, _ = boxes.shape
    channels = features[0].shape[1]
    flat = boxes.reshape(batch * num, 4)  # [B*R,4]
    levels = roi_levels(flat, image_shape[0], image_shape[1])  # [B*R]
    batch_index = torch.arange(batch, device=boxes.device).repeat_interleave(num)  # [B*R]
    pooled = features[0].new_zeros(batch * num, channels, pool_size, pool_size)
    for level, feature in zip(_LEVELS, features):
        chosen = torch.nonzero(levels == level).squeeze(1)
        if chosen.numel():
            crops = crop_and_resize(feature, flat[chosen], batch_index[chosen], pool_size, pool_size)
            pooled = pooled.index_copy(0, chosen, crops)
    return pooled.reshape(batch, num, channels, pool_size, pool_size)


@torch.library.custom_op("mrcnn::pyramid_roi_align", mutates_args=())
def pyramid_roi_align(
    boxes: torch.Tensor, features: List[torch.Tensor], image_shape: List[int], pool_size: int
) -> torch.Tensor:
    """Matterport's PyramidROIAlign: pool each box from its FPN level.

    boxes: float [B,R,4] normalised (y1,x1,y2,x2), zero padding allowed.
    features: [P2, P3, P4, P5], each float [B,C,Hl,Wl].
    image_shape: (H, W) of the molded image (sets the level of each box).
    Returns float [B,R,C,pool_size,pool_size], in box order.
    """
    return pyramid_roi_align_reference(boxes, features, image_shape, pool_size)


@pyramid_roi_align.register_fake
def _(boxes, features, image_shape, pool_size):
    batch, num, _ = boxes.shape
    return boxes.new_empty(batch, num, features[0].shape[1], pool_size, pool_size)


def _setup_context(ctx, inputs, output):
    boxes, features, image_shape, pool_size = inputs
    ctx.save_for_backward(boxes, *features)
    ctx.image_shape, ctx.pool_size = list(image_shape), pool_size


def _backward(ctx, grad):
    """Gradients flow to the features only (boxes are constants, as Matterport's
    stop_gradient); computed by replaying the eager function under autograd."""
    boxes, *features = ctx.saved_tensors
    with torch.enable_grad():
        leaves = [f.detach().requires_grad_(True) for f in features]
        out = pyramid_roi_align_reference(boxes.detach(), leaves, ctx.image_shape, ctx.pool_size)
        grads = torch.autograd.grad(out, leaves, grad, allow_unused=True)
    grads = [torch.zeros_like(f) if g is None else g for f, g in zip(features, grads)]
    return None, grads, None, None


pyramid_roi_align.register_autograd(_backward, setup_context=_setup_context)
