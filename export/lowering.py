"""ONNX lowerings of the model's custom ops, one set per export target.

Shapes: B batch, R boxes, C channels or classes, N candidates, K kept slots,
A anchors, p pooled size. Boxes are normalised (y1, x1, y2, x2).

target "onnx": standard ops only (RoiAlign, TopK, NonMaxSuppression, ScatterND), so the
graph runs in ONNX Runtime and in TensorRT's parser as is.
target "trt": TensorRT plugin nodes (ROIAlign_TRT, EfficientNMS_TRT) in the
``trt.plugins`` domain, picked up by TensorRT's plugin fallback by name.

Semantics kept from the PyTorch ops (see model/ops):
- crop_and_resize: a RoiAlign with half-pixel coordinates, one sample per bin and each
  box shifted and scaled so that its bin centres land on crop_and_resize's samples
  (y1*(H-1) + i*(y2-y1)*(H-1)/(p-1)). Identical inside the feature map; the boxes the
  model pools are clipped to the image, so samples never fall outside.
- NMS: our op keeps score >= threshold, suppresses IoU > threshold and visits tied
  scores by lower index. Backends order ties their own way, so NMS runs on distinct
  rank keys (see _rank_keys) and scores are gathered back; EfficientNMS suppresses
  IoU >= threshold, so the next float above the threshold is passed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx_ir as ir
from onnxscript import opset18 as op
from onnxscript import values

PLUGIN_DOMAIN = "trt.plugins"


def _register_plugin_schemas() -> None:
    """Describe the two TensorRT plugins to ONNX (inputs, outputs, attributes), so that
    onnxscript can emit them and onnx.checker can check them."""
    from onnx import defs

    def schema(name, inputs, outputs, attributes, types):
        if defs.has(name, PLUGIN_DOMAIN):
            return
        attr = defs.OpSchema.AttrType
        defs.register_schema(defs.OpSchema(
            name, PLUGIN_DOMAIN, 1, doc=f"TensorRT plugin {name} (runs in TensorRT)",
            inputs=[defs.OpSchema.FormalParameter(n, t) for n, t in inputs],
            outputs=[defs.OpSchema.FormalParameter(n, t) for n, t in outputs],
            type_constraints=[("T", types, "float tensors")],
            attributes=[defs.OpSchema.Attribute(n, getattr(attr, kind), n) for n, kind in attributes]))

    floats = ["tensor(float)", "tensor(float16)"]
    schema("ROIAlign_TRT", [("X", "T"), ("rois", "T"), ("batch_indices", "tensor(int32)")], [("Y", "T")],
           [("coordinate_transformation_mode", "INT"), ("mode", "INT"), ("output_height", "INT"),
            ("output_width", "INT"), ("sampling_ratio", "INT"), ("spatial_scale", "FLOAT"),
            ("plugin_version", "STRING")], floats)
    schema("EfficientNMS_TRT", [("boxes", "T"), ("scores", "T")],
           [("num_detections", "tensor(int32)"), ("detection_boxes", "T"), ("detection_scores", "T"),
            ("detection_classes", "tensor(int32)")],
           [("score_threshold", "FLOAT"), ("iou_threshold", "FLOAT"), ("max_output_boxes", "INT"),
            ("background_class", "INT"), ("score_activation", "INT"), ("class_agnostic", "INT"),
            ("box_coding", "INT"), ("plugin_version", "STRING")], floats)


_register_plugin_schemas()
TRT_PLUGINS = values.Opset(PLUGIN_DOMAIN, 1)
TARGETS = ("onnx", "trt")
EFFICIENT_NMS_MAX_CANDIDATES = 4096  # EfficientNMS_TRT processes the top 4096 scores
TRT_TOPK_MAX_K = 3840  # TensorRT TopK: k <= 3840
TRT_NMS_MAX_BOXES = 5000  # TensorRT INMSLayer (from ONNX NonMaxSuppression)
ROI_ALIGN_PLUGIN_VERSIONS = ("2", "1")  # 2: IPluginV3, TensorRT >= 10.1; 1: TensorRT 8.5 to 10.x


def _const(array: np.ndarray):
    return op.Constant(value=ir.tensor(array))


def _columns(x, axis: int, count: int = 4):
    """The ``count`` size-1 slices of ``x`` along ``axis`` (Slice, valid in opsets 13-18,
    where Split changed signature)."""
    return [op.Slice(x, _i([k]), _i([k + 1]), _i([axis])) for k in range(count)]


def _f(value: float):
    return _const(np.array(value, dtype=np.float32))


def _i(values_: Sequence[int]):
    return _const(np.array(values_, dtype=np.int64))


def _box_index(index):
    """Indices [B,k] -> [B,k,4], to gather whole boxes with GatherElements."""
    return op.Expand(op.Unsqueeze(index, _i([2])), op.Concat(op.Shape(index), _i([4]), axis=0))


def float_above(value: float) -> float:
    return float(np.nextafter(np.float32(value), np.float32(np.inf)))


# ----------------------------------------------------------------- pyramid RoI align
def _levels(boxes, image_shape):
    """FPN level (2..5) of each box [B,R,4] -> int64 [B,R]; same formula as roi_levels."""
    y1, x1, y2, x2 = _columns(boxes, 2)
    area = op.Mul(op.Sub(y2, y1), op.Sub(x2, x1))
    # float32 arithmetic, as in the PyTorch op
    scale = _f(float(np.float32(224.0) / np.sqrt(np.float32(image_shape[0] * image_shape[1]))))
    level = op.Div(op.Log(op.Div(op.Sqrt(area), scale)), _f(float(np.log(np.float32(2.0)))))
    level = op.Add(_f(4.0), op.Round(level))
    level = op.Where(op.IsNaN(level), _f(2.0), level)
    level = op.Clip(level, _f(2.0), _f(5.0))
    return op.Cast(op.Squeeze(level, _i([2])), to=7)  # [B,R] int64


def _crop_and_resize_rois(flat_boxes, height: int, width: int, pool: int):
    """Normalised (y1,x1,y2,x2) [N,4] -> RoiAlign rois (x1,y1,x2,y2) [N,4] in feature
    pixels whose half-pixel bin centres are crop_and_resize's sample points."""
    y1, x1, y2, x2 = _columns(flat_boxes, 1)

    def axis(lo, hi, size):
        start = op.Mul(lo, _f(float(size - 1)))
        step = op.Div(op.Mul(op.Sub(hi, lo), _f(float(size - 1))), _f(float(pool - 1)))
        first = op.Sub(op.Add(start, _f(0.5)), op.Mul(step, _f(0.5)))
        return first, op.Add(first, op.Mul(step, _f(float(pool))))

    ry1, ry2 = axis(y1, y2, height)
    rx1, rx2 = axis(x1, x2, width)
    return op.Concat(rx1, ry1, rx2, ry2, axis=1)


def _pyramid_roi_align(target: str, plugin_version: str):
    def lowering(boxes, features: List, image_shape: List[int], pool_size: int):
        if pool_size < 2:
            raise ValueError("pool sizes below 2 are not supported by the RoiAlign lowering")
        height, width = int(image_shape[0]), int(image_shape[1])
        batch, rois = int(boxes.shape[0]), int(boxes.shape[1])
        levels = op.Reshape(_levels(boxes, image_shape), _i([batch * rois, 1, 1, 1]))
        flat = op.Reshape(boxes, _i([batch * rois, 4]))
        batch_index = np.repeat(np.arange(batch, dtype=np.int64), rois)
        pooled = None
        for level, feature in zip(range(2, 6), features):
            stride = 2 ** level
            roi_boxes = _crop_and_resize_rois(flat, height // stride, width // stride, pool_size)
            if target == "onnx":
                crops = op.RoiAlign(feature, roi_boxes, _const(batch_index), mode="avg",
                                    output_height=pool_size, output_width=pool_size, sampling_ratio=1,
                                    spatial_scale=1.0, coordinate_transformation_mode="half_pixel")
            else:
                crops = TRT_PLUGINS.ROIAlign_TRT(
                    feature, roi_boxes, _const(batch_index.astype(np.int32)),
                    coordinate_transformation_mode=1, mode=1, output_height=pool_size,
                    output_width=pool_size, sampling_ratio=1, spatial_scale=1.0, plugin_version=plugin_version)
            chosen = op.Equal(levels, _i([level]))
            pooled = crops if pooled is None else op.Where(chosen, crops, pooled)  # level 2 is the fallback
        channels = int(features[0].shape[1])
        return op.Reshape(pooled, _i([batch, rois, channels, pool_size, pool_size]))

    return lowering


# ------------------------------------------------------------------------------ NMS
def _top_k_padded(kept_scores, boxes, scores, class_ids, k: int, num: int):
    """From masked scores [B,N] (-inf = not kept, N = num): the k best, sorted, zero-padded.

    Returns (count int64 [B], boxes [B,k,4], scores [B,k], class_ids int64 [B,k])."""
    take = min(k, num)
    top_scores, index = op.TopK(kept_scores, _i([take]), axis=1, largest=1, sorted=1)  # [B,take]
    valid = op.Not(op.IsInf(top_scores, detect_negative=1, detect_positive=0))
    out_boxes = op.Where(op.Unsqueeze(valid, _i([2])), op.GatherElements(boxes, _box_index(index), axis=1), _f(0.0))
    out_scores = op.Where(valid, op.GatherElements(scores, index, axis=1), _f(0.0))
    out_classes = op.Where(valid, op.GatherElements(class_ids, index, axis=1), _i([0]))
    count = op.ReduceSum(op.Cast(valid, to=7), _i([1]), keepdims=0)
    if take < k:  # fewer candidates than slots: zero-pad to the fixed output size
        out_boxes = op.Pad(out_boxes, _i([0, 0, 0, 0, k - take, 0]))
        out_scores = op.Pad(out_scores, _i([0, 0, 0, k - take]))
        out_classes = op.Pad(out_classes, _i([0, 0, 0, k - take]))
    return count, out_boxes, out_scores, out_classes


def _rank_keys(scores, num: int, valid=None):
    """Distinct float keys N - rank [B,N] that order candidates as the op visits them
    (score descending, ties by lower index: ONNX TopK's documented tie order), with the
    TopK order [B,N]. Invalid candidates (``valid`` False) get key 0. Backends that
    break score ties their own way then agree with the op exactly."""
    _, order = op.TopK(scores, _i([num]), axis=1, largest=1, sorted=1)  # [B,N]
    positions = op.Expand(op.Range(_i(0), _i(num), _i(1)), op.Shape(order))  # broadcast [B,N]
    ranks = op.ScatterElements(op.Mul(order, _i(0)), order, positions, axis=1)  # rank of each candidate
    keys = op.Cast(op.Sub(_i(num), ranks), to=1)
    return (keys if valid is None else op.Where(valid, keys, _f(0.0))), order


def _nms_onnx(boxes, scores, class_ids, iou_threshold: float, score_threshold: float, max_output: int,
              num_classes: int, num: Optional[int] = None, presorted: bool = False):
    """Per-class NonMaxSuppression on rank keys, then the global top K by score.
    ``num`` (N) is read from the scores' static shape unless given; ``presorted`` scores
    (already in visiting order) take their positions as keys."""
    num = int(scores.shape[1]) if num is None else num
    valid = op.GreaterOrEqual(scores, _f(score_threshold))
    if presorted:
        keys = op.Where(valid, op.Expand(op.Range(_f(float(num)), _f(0.0), _f(-1.0)), op.Shape(scores)), _f(0.0))
    else:
        keys, _ = _rank_keys(scores, num, valid)
    classes = _i(list(range(num_classes)))
    member = op.Equal(op.Unsqueeze(class_ids, _i([1])), op.Reshape(classes, _i([1, num_classes, 1])))
    ninf = _f(float("-inf"))
    per_class = op.Where(member, op.Unsqueeze(keys, _i([1])), _f(0.0))  # [B,C,N], valid keys >= 1
    max_per_class = _const(np.array(max_output, dtype=np.int64))  # a scalar, as the spec says
    selected = op.NonMaxSuppression(boxes, per_class, max_per_class, _f(iou_threshold), _f(0.5),
                                    center_point_box=0)  # [S,3]; keeps keys > 0.5
    where = op.Gather(selected, _i([0, 2]), axis=1)  # (batch, box) [S,2]
    ones = op.Expand(_f(1.0), op.Gather(op.Shape(selected), _i([0])))
    kept = op.ScatterND(op.Expand(_f(0.0), op.Shape(scores)), where, ones)  # [B,N]
    kept_scores = op.Where(op.Greater(kept, _f(0.5)), scores, ninf)
    return _top_k_padded(kept_scores, boxes, scores, class_ids, max_output, num)


def _nms_trt(boxes, scores, class_ids, iou_threshold: float, score_threshold: float, max_output: int,
             num_classes: int):
    """EfficientNMS_TRT over one-hot rank keys (see _rank_keys): the plugin's own score
    filter orders tied scores unpredictably, distinct keys cannot tie. Background comes
    with a negative score from the detection layer and fails the threshold; the original
    scores are gathered back through the keys."""
    num = int(scores.shape[1])
    keys, order = _rank_keys(scores, num, op.GreaterOrEqual(scores, _f(score_threshold)))
    classes = op.Reshape(_i(list(range(num_classes))), _i([1, 1, num_classes]))
    member = op.Equal(op.Unsqueeze(class_ids, _i([2])), classes)
    per_class = op.Where(member, op.Unsqueeze(keys, _i([2])), _f(0.0))  # [B,N,C]
    count, out_boxes, out_keys, out_classes = TRT_PLUGINS.EfficientNMS_TRT(
        boxes, per_class, score_threshold=0.5, iou_threshold=float_above(iou_threshold),
        max_output_boxes=max_output, background_class=-1, score_activation=0, class_agnostic=0, box_coding=0,
        plugin_version="1")
    count = op.Cast(op.Squeeze(count, _i([1])), to=7)  # [B]
    valid = op.Less(op.Range(_i(0), _i(max_output), _i(1)), op.Unsqueeze(count, _i([1])))  # [B,K]
    ranks = op.Clip(op.Sub(_i(num), op.Cast(out_keys, to=7)), _i(0), _i(num - 1))
    index = op.GatherElements(order, ranks, axis=1)  # candidate index of each kept slot
    out_scores = op.Where(valid, op.GatherElements(scores, index, axis=1), _f(0.0))
    return count, out_boxes, out_scores, op.Cast(out_classes, to=7)


# ------------------------------------------------------------------------ proposals
def _decode(anchors, deltas, std_dev):
    """apply_box_deltas on [...,4] anchors and raw deltas (times std_dev)."""
    deltas = op.Mul(deltas, _const(np.asarray(std_dev, np.float32)))
    ay1, ax1, ay2, ax2 = _columns(anchors, -1)
    dy, dx, dh, dw = _columns(deltas, -1)
    height, width = op.Sub(ay2, ay1), op.Sub(ax2, ax1)
    cy = op.Add(op.Add(ay1, op.Mul(_f(0.5), height)), op.Mul(dy, height))
    cx = op.Add(op.Add(ax1, op.Mul(_f(0.5), width)), op.Mul(dx, width))
    height, width = op.Mul(height, op.Exp(dh)), op.Mul(width, op.Exp(dw))
    y1, x1 = op.Sub(cy, op.Mul(_f(0.5), height)), op.Sub(cx, op.Mul(_f(0.5), width))
    boxes = op.Concat(y1, x1, op.Add(y1, height), op.Add(x1, width), axis=-1)
    return op.Clip(boxes, _f(0.0), _f(1.0))


def _top_k_boxes(scores, deltas, anchors, std_dev: List[float], k: int):
    """The k best anchors by score [B,A], decoded: (scores [B,k], boxes [B,k,4])."""
    top_scores, index = op.TopK(scores, _i([k]), axis=1, largest=1, sorted=1)  # [B,k]
    top_deltas = op.GatherElements(deltas, _box_index(index), axis=1)  # [B,k,4]
    return top_scores, _decode(op.Gather(anchors, index, axis=0), top_deltas, std_dev)


def _proposals_onnx(scores, deltas, anchors, std_dev: List[float], pre_nms_limit: int, nms_threshold: float,
                    proposal_count: int):
    top_scores, boxes = _top_k_boxes(scores, deltas, anchors, std_dev, pre_nms_limit)
    zeros = op.Cast(op.Mul(top_scores, _f(0.0)), to=7)
    _, proposals, _, _ = _nms_onnx(boxes, top_scores, zeros, nms_threshold, float("-inf"), proposal_count, 1,
                                   num=pre_nms_limit, presorted=True)
    return proposals


def _proposals_trt(scores, deltas, anchors, std_dev: List[float], pre_nms_limit: int, nms_threshold: float,
                   proposal_count: int):
    """EfficientNMS_TRT over the decoded anchors. With k = pre_nms_limit equal to all
    anchors or to 4096, every anchor goes in and the plugin keeps its own top 4096; a
    smaller k (<= 3840, TensorRT's TopK limit) is selected with TopK first. The exporter
    rejects other values before it gets here."""
    num_anchors = int(anchors.shape[0])
    if pre_nms_limit in (num_anchors, EFFICIENT_NMS_MAX_CANDIDATES):
        boxes, top_scores = _decode(op.Unsqueeze(anchors, _i([0])), deltas, std_dev), scores  # [B,A,4]
    else:
        top_scores, boxes = _top_k_boxes(scores, deltas, anchors, std_dev, pre_nms_limit)
    _, proposals, _, _ = TRT_PLUGINS.EfficientNMS_TRT(
        boxes, op.Unsqueeze(top_scores, _i([2])), score_threshold=0.0, iou_threshold=float_above(nms_threshold),
        max_output_boxes=proposal_count, background_class=-1, score_activation=0, class_agnostic=1, box_coding=0,
        plugin_version="1")
    return proposals


def translation_table(target: str, roi_align_version: str = "2") -> Dict:
    """{torch custom op overload: ONNX lowering} for torch.onnx.export(dynamo=True).

    roi_align_version: the ROIAlign_TRT plugin version the trt target asks for ("2" needs
    TensorRT 10.1 or later; "1" for JetPack 5's TensorRT 8.5/8.6)."""
    import torch

    import model.ops  # noqa: F401  (registers the ops)

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if roi_align_version not in ROI_ALIGN_PLUGIN_VERSIONS:
        raise ValueError(f"ROIAlign_TRT version must be one of {ROI_ALIGN_PLUGIN_VERSIONS}, got {roi_align_version!r}")
    return {
        torch.ops.mrcnn.pyramid_roi_align.default: _pyramid_roi_align(target, roi_align_version),
        torch.ops.mrcnn.nms.default: _nms_onnx if target == "onnx" else _nms_trt,
        torch.ops.mrcnn.proposals.default: _proposals_onnx if target == "onnx" else _proposals_trt,
    }
