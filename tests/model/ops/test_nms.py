"""mrcnn::nms against a slow, literal greedy NMS with TensorFlow's IoU.

Randomized cases include exact score ties, touching and identical boxes, zero-area and
flipped boxes, several classes, thresholds that drop everything, and no boxes.
"""

import numpy as np
import pytest
import torch

from model.ops.nms import nms, nms_indices

f32 = np.float32


def reference_iou(a, b):
    ymin_a, ymax_a = min(a[0], a[2]), max(a[0], a[2])
    xmin_a, xmax_a = min(a[1], a[3]), max(a[1], a[3])
    ymin_b, ymax_b = min(b[0], b[2]), max(b[0], b[2])
    xmin_b, xmax_b = min(b[1], b[3]), max(b[1], b[3])
    area_a = (ymax_a - ymin_a) * (xmax_a - xmin_a)
    area_b = (ymax_b - ymin_b) * (xmax_b - xmin_b)
    if area_a <= 0 or area_b <= 0:
        return f32(0)
    inter = max(min(ymax_a, ymax_b) - max(ymin_a, ymin_b), f32(0)) * \
        max(min(xmax_a, xmax_b) - max(xmin_a, xmin_b), f32(0))
    return inter / (area_a + area_b - inter)


def reference_nms(boxes, scores, classes, iou_threshold, score_threshold, max_output):
    """Visit by (-score, index); keep a box unless it overlaps a kept box of its class."""
    candidates = sorted((i for i in range(len(scores)) if scores[i] >= score_threshold),
                        key=lambda i: (-scores[i], i))
    kept = []
    for i in candidates:
        if len(kept) == max_output:
            break
        if all(classes[j] != classes[i] or reference_iou(boxes[i], boxes[j]) <= f32(iou_threshold)
               for j in kept):
            kept.append(i)
    return kept


def random_case(rng, count, num_classes):
    """Coarse-grid boxes (exact ties, touching and identical boxes, some flipped or
    zero-area) with many exactly equal scores."""
    boxes = (rng.integers(0, 8, (count, 4)) / 8).astype(np.float32)
    ordered = rng.random(count) < 0.8
    boxes[ordered] = np.concatenate([np.minimum(boxes[ordered, :2], boxes[ordered, 2:]),
                                     np.maximum(boxes[ordered, :2], boxes[ordered, 2:])], axis=1)
    boxes[rng.random(count) < 0.1] = boxes[0] if count else boxes[:0]
    scores = (rng.integers(0, 6, count) / 5).astype(np.float32)
    classes = rng.integers(0, num_classes, count)
    return boxes, scores, classes


@pytest.mark.parametrize("seed", range(25))
def test_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    batch, count = 2, int(rng.integers(0, 40))
    iou_threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]))
    score_threshold = float(rng.choice([float("-inf"), 0.0, 0.4, 2.0]))
    max_output = int(rng.integers(1, 12))
    cases = [random_case(rng, count, int(rng.integers(1, 4))) for _ in range(batch)]
    num, boxes, scores, classes = nms(
        torch.from_numpy(np.stack([c[0] for c in cases])).reshape(batch, count, 4),
        torch.from_numpy(np.stack([c[1] for c in cases])).reshape(batch, count),
        torch.from_numpy(np.stack([c[2] for c in cases])).reshape(batch, count).long(),
        iou_threshold, score_threshold, max_output, 4)
    assert boxes.shape == (batch, max_output, 4) and scores.shape == (batch, max_output)
    for b, (case_boxes, case_scores, case_classes) in enumerate(cases):
        kept = reference_nms(case_boxes, case_scores, case_classes, iou_threshold, score_threshold, max_output)
        n = len(kept)
        assert int(num[b]) == n
        np.testing.assert_array_equal(boxes[b, :n].numpy(), case_boxes[kept])
        np.testing.assert_array_equal(scores[b, :n].numpy(), case_scores[kept])
        np.testing.assert_array_equal(classes[b, :n].numpy(), case_classes[kept])
        assert not boxes[b, n:].any() and not scores[b, n:].any() and not classes[b, n:].any()


@pytest.mark.parametrize("chunk", [1, 3, 7, 256])
def test_chunked_visiting_matches_reference(chunk):
    """Many candidates (proposal-sized) across chunk boundaries, cut at max_output."""
    rng = np.random.default_rng(chunk)
    boxes, scores, classes = random_case(rng, 600, 2)
    for max_output in (5, 100, 600):
        kept = nms_indices(boxes, scores, classes, 0.5, 0.0, max_output, chunk=chunk)
        np.testing.assert_array_equal(kept, reference_nms(boxes, scores, classes, 0.5, 0.0, max_output))


def test_ties_keep_the_lower_index():
    boxes = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]]], dtype=torch.float32)
    scores = torch.tensor([[0.5, 0.5, 0.5]])
    num, out, _, _ = nms(boxes, scores, torch.zeros(1, 3, dtype=torch.long), 0.5, 0.0, 5, 1)
    assert int(num[0]) == 2
    torch.testing.assert_close(out[0, :2], boxes[0, [0, 2]])


def test_suppression_is_per_class_and_zero_area_never_suppresses():
    boxes = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    classes = torch.tensor([[1, 2, 1, 1, 1]])
    num, _, out_scores, out_classes = nms(boxes, scores, classes, 0.3, 0.0, 10, 3)
    assert int(num[0]) == 4  # box 2 suppressed by box 0 (same class); zero-area boxes kept
    assert out_classes[0, :4].tolist() == [1, 2, 1, 1]


def test_no_boxes():
    num, boxes, scores, classes = nms(torch.zeros(3, 0, 4), torch.zeros(3, 0),
                                      torch.zeros(3, 0, dtype=torch.long), 0.5, 0.0, 4, 1)
    assert num.tolist() == [0, 0, 0] and boxes.shape == (3, 4, 4) and not boxes.any()
