"""Second-stage targets and the five losses on hand-made cases."""

import math

import numpy as np
import pytest
import torch

from model.training.losses import (
    add_l2_gradient,
    l2_regularization,
    mrcnn_bbox_loss,
    mrcnn_class_loss,
    mrcnn_mask_loss,
    rpn_bbox_loss,
    rpn_class_loss,
    smooth_l1,
)
from model.training.targets import detection_targets


def test_detection_targets_hand_made(tiny_config):
    config = tiny_config.__class__(TRAIN_ROIS_PER_IMAGE=6, ROI_POSITIVE_RATIO=0.5, MASK_SHAPE=(4, 4),
                                   MASK_POOL_SIZE=2, USE_MINI_MASK=True)
    gt_box = [0.2, 0.2, 0.6, 0.6]
    proposals = torch.tensor([[gt_box, [0.7, 0.7, 0.9, 0.9], [0.72, 0.7, 0.92, 0.9], [0, 0, 0, 0]]])
    gt_masks = torch.zeros(1, 2, 8, 8)
    gt_masks[0, 0, :, :4] = 1  # left half of the object
    targets = detection_targets(proposals, torch.tensor([[2, 0]]), torch.tensor([[gt_box, [0, 0, 0, 0]]]),
                                gt_masks, config, torch.Generator().manual_seed(0))
    # 1 positive (the exact box), negatives = int(2.0 * 1) - 1 = 1 of the 2 far boxes, then zero padding
    assert targets.class_ids.tolist() == [[2, 0, 0, 0, 0, 0]]
    torch.testing.assert_close(targets.rois[0, 0], torch.tensor(gt_box))
    negative = targets.rois[0, 1]
    assert any(torch.allclose(negative, proposals[0, i]) for i in (1, 2))  # one of the two far boxes
    assert not targets.rois[0, 2:].any()
    torch.testing.assert_close(targets.deltas[0, 0], torch.zeros(4))  # exact box: no refinement
    expected = torch.tensor([[1.0, 1, 0, 0]] * 4)  # 4x4 crop of the mini mask: left half
    torch.testing.assert_close(targets.masks[0, 0], expected)


def test_crowd_overlapping_proposals_are_not_negatives(tiny_config):
    config = tiny_config.__class__(TRAIN_ROIS_PER_IMAGE=4, ROI_POSITIVE_RATIO=0.5)
    proposals = torch.tensor([[[0.0, 0.0, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7], [0.52, 0.5, 0.72, 0.7]]])
    gt_boxes = torch.tensor([[[0.0, 0.0, 0.3, 0.3], [0.5, 0.5, 0.75, 0.75]]])
    targets = detection_targets(proposals, torch.tensor([[1, -1]]), gt_boxes, torch.ones(1, 2, 56, 56),
                                config, torch.Generator().manual_seed(0))
    assert targets.class_ids[0, 0] == 1
    assert not targets.rois[0, 1:].any()  # both other proposals touch the crowd: no negatives left


def test_rpn_losses():
    match = torch.tensor([[1, -1, 0, 1]])
    logits = torch.tensor([[[0.0, 2.0], [1.0, 0.0], [5.0, -5.0], [0.0, 0.0]]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)) + math.log(2)) / 3
    assert rpn_class_loss(match, logits).item() == pytest.approx(expected, rel=1e-6)
    targets = torch.zeros(1, 256, 4)
    targets[0, 0] = torch.tensor([0.5, 0, 0, 0])  # first positive anchor
    targets[0, 1] = torch.tensor([0, 3.0, 0, 0])  # second positive anchor
    deltas = torch.zeros(1, 4, 4)
    # smooth-L1: 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5, mean over 2 x 4 values
    assert rpn_bbox_loss(targets, match, deltas).item() == pytest.approx((0.125 + 2.5) / 8)


def test_head_losses():
    class_ids = torch.tensor([[2, 0, 1]])
    logits = torch.zeros(1, 3, 3)
    logits[0, 0, 2] = 10.0  # predicts class 2
    active = torch.tensor([[1, 1, 0]])  # class 2 inactive for this dataset: RoI 0 is ignored
    expected = math.log(3)  # RoIs 1 and 2 predict class 0 (argmax of equal logits) with uniform probs
    assert mrcnn_class_loss(class_ids, logits, active).item() == pytest.approx(expected, rel=1e-6)

    target_deltas = torch.tensor([[[1.0, 0, 0, 0], [9, 9, 9, 9], [0, 0, 0, 2.0]]])
    pred = torch.zeros(1, 3, 3, 4)
    pred[0, 0, 2] = torch.tensor([0.0, 0, 0, 0])
    # positives: RoI 0 (class 2) diff (1,0,0,0) -> 0.5 ; RoI 2 (class 1) diff (0,0,0,2) -> 1.5; mean over 8
    assert mrcnn_bbox_loss(target_deltas, class_ids, pred).item() == pytest.approx(2.0 / 8)

    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0] = 1.0
    mask_logits = torch.zeros(1, 3, 3, 2, 2)
    assert mrcnn_mask_loss(masks, class_ids, mask_logits).item() == pytest.approx(math.log(2), rel=1e-6)


def test_losses_without_positives_are_zero_but_connected():
    logits = torch.zeros(1, 2, 3, 2, 2, requires_grad=True)
    loss = mrcnn_mask_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, dtype=torch.long), logits)
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None and not logits.grad.any()
    assert rpn_bbox_loss(torch.zeros(1, 256, 4), torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, 4)) == 0


def test_smooth_l1_and_l2():
    np.testing.assert_allclose(smooth_l1(torch.tensor([-0.5, 1.0, 3.0])).numpy(), [0.125, 0.5, 2.5])
    w = torch.nn.Parameter(torch.full((2, 2), 2.0))
    assert l2_regularization([w], 1e-4).item() == pytest.approx(1e-4 * 16 / 4)


def test_l2_gradient_is_the_gradient_of_the_l2_term():
    """add_l2_gradient against autograd through Matterport's formula (slow, obvious)."""
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(shape)) for shape in ((3, 4), (5,), (2, 3, 3, 3))]
    reference = sum(1e-3 * (w ** 2).sum() / w.numel() for w in weights)
    expected = torch.autograd.grad(reference, weights)
    weights[0].grad = torch.ones(3, 4)  # an existing gradient is added to; a missing one is created
    add_l2_gradient(weights, 1e-3)
    torch.testing.assert_close(weights[0].grad, expected[0] + 1, rtol=1e-6, atol=1e-7)
    for w, g in zip(weights[1:], expected[1:]):
        torch.testing.assert_close(w.grad, g, rtol=1e-6, atol=1e-7)
    assert l2_regularization(weights, 1e-3).item() == pytest.approx(reference.item(), rel=1e-6)
    assert not l2_regularization(weights, 1e-3).requires_grad
