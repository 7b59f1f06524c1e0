"""Reference (numpy) implementations of the TensorRT plugins the ``trt`` target uses,
registered with onnxruntime-extensions so that graph runs in ONNX Runtime on a CPU
(slowly: they check the graph, they are not a way to deploy it).

They transcribe NVIDIA's kernels (TensorRT's plugin/roiAlignPlugin/roiAlignKernel.cu and
plugin/efficientNMSPlugin/efficientNMSInference.cu) for the settings this project uses:

ROIAlign_TRT (average mode): rois [R,4] as (x1, y1, x2, y2); half-pixel offset when
coordinate_transformation_mode is 1; samples outside [-1, H] x [-1, W] are 0, others are
clamped into the map; the bin average of sampling_ratio^2 bilinear samples.

EfficientNMS_TRT: keep (box, class) scores >= score_threshold, skip background_class,
sort by score (descending; ties here by box-major index), process the top 4096, drop a
candidate whose IoU with a kept box of the same class (any class if class_agnostic)
is >= iou_threshold, stop at max_output_boxes. Outputs num_detections int32 [B,1],
boxes [B,K,4], scores [B,K], classes int32 [B,K], zero-padded.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

PLUGIN_DOMAIN = "trt.plugins"  # where the export puts the plugin nodes
CONTRIB_DOMAIN = "ai.onnx.contrib"  # where onnxruntime-extensions looks for Python ops

MAX_CANDIDATES = 4096


def roi_align_trt(x: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, coordinate_transformation_mode: int = 1,
                  mode: int = 1, output_height: int = 1, output_width: int = 1, sampling_ratio: int = 0,
                  spatial_scale: float = 1.0) -> np.ndarray:
    """x float [B,C,H,W]; rois float [R,4]; batch_indices int [R] -> float [R,C,oh,ow]."""
    if mode != 1 or sampling_ratio < 1:
        raise NotImplementedError("reference covers average mode with a fixed sampling_ratio")
    x = x.astype(np.float32)
    _, channels, height, width = x.shape
    offset = np.float32(0.5 if coordinate_transformation_mode else 0.0)
    scale = np.float32(spatial_scale)
    out = np.zeros((len(rois), channels, output_height, output_width), np.float32)
    for r, (roi, b) in enumerate(zip(rois.astype(np.float32), batch_indices)):
        start_w, start_h = roi[0] * scale - offset, roi[1] * scale - offset
        end_w, end_h = roi[2] * scale - offset, roi[3] * scale - offset
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not coordinate_transformation_mode:
            roi_w, roi_h = max(roi_w, np.float32(1)), max(roi_h, np.float32(1))
        bin_h, bin_w = roi_h / np.float32(output_height), roi_w / np.float32(output_width)
        grid = sampling_ratio
        iy = (np.arange(grid, dtype=np.float32) + np.float32(0.5)) * (bin_h / np.float32(grid))
        ix = (np.arange(grid, dtype=np.float32) + np.float32(0.5)) * (bin_w / np.float32(grid))
        ys = start_h + np.arange(output_height, dtype=np.float32)[:, None] * bin_h + iy[None, :]  # [oh,g]
        xs = start_w + np.arange(output_width, dtype=np.float32)[:, None] * bin_w + ix[None, :]  # [ow,g]
        values = _bilinear(x[int(b)], ys.reshape(-1), xs.reshape(-1), height, width)  # [C, oh*g, ow*g]
        values = values.reshape(channels, output_height, grid, output_width, grid)
        out[r] = values.sum(axis=(2, 4)) / np.float32(grid * grid)
    return out


def _bilinear(feature: np.ndarray, ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> np.ndarray:
    """feature [C,H,W] sampled at every (y in ys, x in xs) -> [C,len(ys),len(xs)]."""

    def axis(coords, size):
        outside = (coords < -1.0) | (coords > size)
        coords = np.where(coords <= 0, np.float32(0), coords)
        low = np.floor(coords).astype(np.int64)  # == int cast for coords >= 0
        at_edge = low >= size - 1
        low = np.where(at_edge, size - 1, low)
        high = np.where(at_edge, size - 1, low + 1)
        coords = np.where(at_edge, low.astype(np.float32), coords)
        frac = (coords - low.astype(np.float32)).astype(np.float32)
        return low, high, frac, outside

    y_low, y_high, ly, y_out = axis(ys, height)
    x_low, x_high, lx, x_out = axis(xs, width)
    hy, hx = np.float32(1) - ly, np.float32(1) - lx
    v1 = feature[:, y_low[:, None], x_low[None, :]]
    v2 = feature[:, y_low[:, None], x_high[None, :]]
    v3 = feature[:, y_high[:, None], x_low[None, :]]
    v4 = feature[:, y_high[:, None], x_high[None, :]]
    value = ((hy[:, None] * hx[None, :]) * v1 + (hy[:, None] * lx[None, :]) * v2
             + (ly[:, None] * hx[None, :]) * v3 + (ly[:, None] * lx[None, :]) * v4)
    return np.where((y_out[:, None] | x_out[None, :])[None], np.float32(0), value).astype(np.float32)


def _iou_corner(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """EfficientNMS's IoU: corners reordered; 0 when the intersection or union is <= 0."""
    def reorder(b):
        return np.stack([np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]),
                         np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3])], axis=-1)

    a, b = reorder(box[None]), reorder(others)
    inter = (np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
             * np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)).astype(np.float32)
    area = lambda c: (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((inter <= 0) | (union <= 0), np.float32(0), iou).astype(np.float32)


def efficient_nms_trt(boxes: np.ndarray, scores: np.ndarray, score_threshold: float = 0.0,
                      iou_threshold: float = 0.5, max_output_boxes: int = 100, background_class: int = -1,
                      score_activation: int = 0, class_agnostic: int = 0, box_coding: int = 0):
    """boxes [B,N,4]; scores [B,N,C] -> (num [B,1] int32, boxes [B,K,4], scores [B,K], classes [B,K] int32)."""
    if score_activation or box_coding:
        raise NotImplementedError("reference covers box_coding 0 without score activation")
    batch, _, num_classes = scores.shape
    k = int(max_output_boxes)
    num = np.zeros((batch, 1), np.int32)
    out_boxes = np.zeros((batch, k, 4), np.float32)
    out_scores = np.zeros((batch, k), np.float32)
    out_classes = np.zeros((batch, k), np.int32)
    for b in range(batch):
        flat = scores[b].reshape(-1)  # index = box * C + class
        candidates = np.nonzero(flat >= np.float32(score_threshold))[0]
        candidates = candidates[candidates % num_classes != background_class]
        candidates = candidates[np.argsort(-flat[candidates], kind="stable")][:MAX_CANDIDATES]
        kept = []
        for index in candidates:
            box, cls = boxes[b, index // num_classes], index % num_classes
            same = [j for j in kept if class_agnostic or j % num_classes == cls]
            if same and (_iou_corner(box, boxes[b, np.array(same) // num_classes]) >= np.float32(iou_threshold)).any():
                continue
            kept.append(index)
            if len(kept) == k:
                break
        n = len(kept)
        num[b, 0] = n
        if n:
            kept = np.array(kept)
            out_boxes[b, :n] = boxes[b, kept // num_classes]
            out_scores[b, :n] = flat[kept]
            out_classes[b, :n] = kept % num_classes
    return num, out_boxes, out_scores, out_classes


_registered = False


def register() -> None:
    """Register both plugins as onnxruntime-extensions Python ops (domain ai.onnx.contrib), once."""
    global _registered
    if _registered:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    f, i32, i64 = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_int64
    string = PyCustomOpDef.dt_string

    @onnx_op(op_type="ROIAlign_TRT", inputs=[f, f, i32], outputs=[f],
             attrs={"coordinate_transformation_mode": i64, "mode": i64, "output_height": i64, "output_width": i64,
                    "sampling_ratio": i64, "spatial_scale": f, "plugin_version": string})
    def _roi_align(x, rois, batch_indices, **attrs):
        attrs.pop("plugin_version", None)
        return roi_align_trt(x, rois, batch_indices, **{k: (float(v) if k == "spatial_scale" else int(v))
                                                        for k, v in attrs.items()})

    @onnx_op(op_type="EfficientNMS_TRT", inputs=[f, f], outputs=[i32, f, f, i32],
             attrs={"score_threshold": f, "iou_threshold": f, "max_output_boxes": i64, "background_class": i64,
                    "score_activation": i64, "class_agnostic": i64, "box_coding": i64, "plugin_version": string})
    def _efficient_nms(boxes, scores, **attrs):
        attrs.pop("plugin_version", None)
        return efficient_nms_trt(boxes, scores, **{k: (float(v) if "threshold" in k else int(v))
                                                   for k, v in attrs.items()})

    _registered = True


def has_plugin_nodes(graph) -> bool:
    """Does the onnx ModelProto hold TensorRT plugin nodes (an export with --target trt)?"""
    return any(node.domain == PLUGIN_DOMAIN for node in graph.graph.node)


def plugin_session(onnx_path: str) -> Tuple[bytes, object]:
    """(model bytes, onnxruntime SessionOptions) that run a target-trt graph in ONNX
    Runtime: the plugin nodes move to onnxruntime-extensions' domain, where the numpy
    references above are registered."""
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path
    except ImportError as exc:
        raise ImportError(f"running TensorRT plugin nodes on the CPU needs onnx and onnxruntime-extensions "
                          f"(pip install 'mrcnn-edge[trt-reference]'): {exc}") from exc
    register()
    graph = onnx.load(onnx_path)
    for node in graph.graph.node:
        if node.domain == PLUGIN_DOMAIN:
            node.domain = CONTRIB_DOMAIN
    if not any(o.domain == CONTRIB_DOMAIN for o in graph.opset_import):
        graph.opset_import.add(domain=CONTRIB_DOMAIN, version=1)
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    return graph.SerializeToString(), options

