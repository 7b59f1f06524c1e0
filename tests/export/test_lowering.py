"""Each custom op's ONNX lowering, for both targets, against the PyTorch op.

Small graphs that call one op are exported and run in ONNX Runtime (the trt target
through the reference plugin implementations); random inputs avoid exact score ties,
where the backends may order equal scores differently.
"""

import numpy as np
import pytest
import torch

from export.lowering import translation_table
from model.ops.nms import nms
from model.ops.proposals import proposals
from model.ops.roi_align import pyramid_roi_align
from runtime.plugin_reference import plugin_session


def run_exported(module, inputs, target, tmp_path):
    import onnxruntime as ort

    path = str(tmp_path / f"op_{target}.onnx")
    program = torch.onnx.export(module, tuple(inputs), dynamo=True, opset_version=17,
                                custom_translation_table=translation_table(target), verbose=False)
    program.save(path)
    options = None
    if target == "trt":
        path, options = plugin_session(path)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)


class Pool(torch.nn.Module):
    def forward(self, boxes, p2, p3, p4, p5):
        return pyramid_roi_align(boxes, [p2, p3, p4, p5], [128, 128], 7)


@pytest.mark.parametrize("target", ["onnx", "trt"])
def test_pyramid_roi_align_lowering(target, tmp_path):
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(2, 8, 128 // s, 128 // s, generator=generator) for s in (4, 8, 16, 32)]
    corners = torch.rand(2, 30, 2, 2, generator=generator).sort(dim=2).values  # y1<y2, x1<x2 inside the image
    boxes = torch.stack([corners[..., 0, 0], corners[..., 0, 1], corners[..., 1, 0], corners[..., 1, 1]], -1)
    boxes[0, -3:] = 0.0  # zero padding
    boxes[1, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # the whole image (level 5)
    expected = Pool()(boxes, *features)
    (ours,) = run_exported(Pool(), [boxes, *features], target, tmp_path)
    np.testing.assert_allclose(ours, expected.numpy(), atol=2e-5, rtol=1e-5)


class Nms(torch.nn.Module):
    def forward(self, boxes, scores, classes):
        return nms(boxes, scores, classes, 0.5, 0.3, 20, 4)


@pytest.mark.parametrize("target", ["onnx", "trt"])
def test_nms_lowering(target, tmp_path):
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(2, 60, 2, 2, generator=generator).sort(dim=2).values
    boxes = torch.stack([corners[..., 0, 0], corners[..., 0, 1], corners[..., 1, 0], corners[..., 1, 1]], -1)
    scores = torch.rand(2, 60, generator=generator)
    scores[0, :5] = -1.0  # "background" slots, as the detection layer passes them
    classes = torch.randint(0, 4, (2, 60), generator=generator)
    classes[0, :5] = 0
    expected = Nms()(boxes, scores, classes)
    ours = run_exported(Nms(), [boxes, scores, classes], target, tmp_path)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
    assert int(expected[0][0]) > 0


class Proposals(torch.nn.Module):
    def __init__(self, anchors, k):
        super().__init__()
        self.anchors, self.k = anchors, k

    def forward(self, scores, deltas):
        return proposals(scores, deltas, self.anchors, [0.1, 0.1, 0.2, 0.2], self.k, 0.7, 50)


@pytest.mark.parametrize("target, k", [("onnx", 300), ("trt", 300), ("trt", 1000)])
def test_proposals_lowering(target, k, tmp_path):
    generator = torch.Generator().manual_seed(2)
    centres = torch.rand(1000, 2, generator=generator)
    sizes = torch.rand(1000, 2, generator=generator) * 0.3 + 0.02
    anchors = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)
    scores = torch.rand(2, 1000, generator=generator)
    deltas = torch.randn(2, 1000, 4, generator=generator)
    module = Proposals(anchors, k)  # k == all anchors exercises the trt decode-all path
    expected = module(scores, deltas)
    (ours,) = run_exported(module, [scores, deltas], target, tmp_path)
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-6)
