"""Export Mask R-CNN to ONNX, for ONNX Runtime or for TensorRT.

    python -m export.to_onnx --weights benchmarks/artifacts/shapes_r50.pt --clamp-pre-nms --output shapes.onnx
    python -m export.to_onnx --weights mask_rcnn_coco.h5 --image-size 1024 --target trt --clamp-pre-nms \\
        --output coco_trt.onnx

Inputs: ``images`` float32 [B,3,H,W] (molded: RGB minus the mean) and ``windows``
float32 [B,4] (the real image inside each molded one, pixels). Outputs, fixed size:
``num_detections`` int64 [B], ``boxes`` float32 [B,K,4] (y1,x1,y2,x2 normalised),
``scores`` [B,K], ``class_ids`` int64 [B,K], ``masks`` float32 [B,K,28,28] (the detected
class's mask). K = DETECTION_MAX_INSTANCES.

--target onnx uses standard ops only (runs in ONNX Runtime and in TensorRT's parser);
--target trt uses the ROIAlign_TRT and EfficientNMS_TRT plugins. TensorRT cannot take
Matterport's PRE_NMS_LIMIT of 6000 (TopK <= 3840, EfficientNMS <= 4096 candidates):
the export stops with a message unless --clamp-pre-nms lowers it (its AP cost is
measured by benchmarks/export_onnx.py). After exporting, the graph is checked with
onnx.checker and run in ONNX Runtime on images other than the export input, against
PyTorch (--no-verify skips that).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from export.lowering import (
    EFFICIENT_NMS_MAX_CANDIDATES,
    ROI_ALIGN_PLUGIN_VERSIONS,
    TARGETS,
    TRT_NMS_MAX_BOXES,
    TRT_TOPK_MAX_K,
    translation_table,
)
from model.anchors import generate_anchors
from model.config import Config, ConfigError
from model.weights.h5_weights import WeightsError
from runtime.files import OutputPathError, check_output_path
from runtime.integrity import save_onnx
from runtime.model_info import INPUT_NAMES, OUTPUT_NAMES, ModelInfo


class ExportError(ValueError):
    """A model or config that cannot be exported as asked; raised before any long work."""


@dataclass
class ExportReport:
    path: str
    target: str
    seconds: float
    size_bytes: int
    pre_nms_limit: int
    clamped_from: Optional[int]


def project_version() -> str:
    try:
        from importlib.metadata import version

        return version("mrcnn-edge")
    except Exception:  # not installed as a distribution
        return "unknown"


def export_config(config: Config, image_size: Optional[int], target: str,
                  clamp_pre_nms: bool) -> Tuple[Config, Optional[int]]:
    """The config the graph is built for, or ExportError when the target cannot express
    it. Returns (config, the original PRE_NMS_LIMIT when it was clamped, else None)."""
    if target not in TARGETS:
        raise ExportError(f"--target must be one of {TARGETS}, got {target!r}")
    if config.IMAGE_RESIZE_MODE != "square":
        raise ExportError(f'IMAGE_RESIZE_MODE "{config.IMAGE_RESIZE_MODE}" gives variable input sizes; the exported '
                          f'graph has a fixed size: use "square"')
    if image_size is not None:
        if image_size < 64 or image_size % 64:
            raise ExportError(f"--image-size must be a multiple of 64, got {image_size}")
        try:
            config = dataclasses.replace(config, IMAGE_MAX_DIM=image_size,
                                         IMAGE_MIN_DIM=min(config.IMAGE_MIN_DIM, image_size))
        except ConfigError as exc:
            raise ExportError(str(exc)) from exc
    side = config.IMAGE_MAX_DIM
    anchors = len(generate_anchors((side, side), config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                   config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE))
    wanted = min(config.PRE_NMS_LIMIT, anchors)
    if target == "onnx":
        clamp_to, why = TRT_TOPK_MAX_K, f"TensorRT's TopK takes k <= {TRT_TOPK_MAX_K}"
        allowed = wanted <= clamp_to
    else:
        clamp_to = EFFICIENT_NMS_MAX_CANDIDATES
        why = f"EfficientNMS_TRT reads at most {clamp_to} candidates (and TopK takes k <= {TRT_TOPK_MAX_K})"
        allowed = wanted <= TRT_TOPK_MAX_K or wanted in (anchors, clamp_to)
    if config.POST_NMS_ROIS_INFERENCE > TRT_NMS_MAX_BOXES:
        raise ExportError(f"POST_NMS_ROIS_INFERENCE {config.POST_NMS_ROIS_INFERENCE} exceeds TensorRT's NMS "
                          f"limit of {TRT_NMS_MAX_BOXES} boxes")
    if allowed:
        return config, None
    if not clamp_pre_nms:
        raise ExportError(f"PRE_NMS_LIMIT {config.PRE_NMS_LIMIT} ({wanted} of {anchors} anchors at {side}x{side}) "
                          f"cannot be exported for target {target}: {why}. Pass --clamp-pre-nms to export with "
                          f"{clamp_to} (see the README for the AP it costs), or lower PRE_NMS_LIMIT in your config")
    return dataclasses.replace(config, PRE_NMS_LIMIT=clamp_to), config.PRE_NMS_LIMIT


class GraphModule(torch.nn.Module):
    """The exported graph: (images, windows) -> the five named outputs as a tuple."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, windows: torch.Tensor):
        return tuple(self.model(images, windows))


def export_onnx(model, path: str, target: str = "onnx", batch_size: int = 1, class_names: Optional[List[str]] = None,
                opset: int = 17, clamped_from: Optional[int] = None, roi_align_version: str = "2") -> ExportReport:
    """Export ``model`` (a MaskRCNN whose config export_config accepted) to ``path``.

    roi_align_version: the ROIAlign_TRT plugin version of the trt target (see translation_table).
    Raises OutputPathError before exporting when ``path`` cannot be written."""
    import onnx

    check_output_path(path)
    config = model.config
    side = config.IMAGE_MAX_DIM
    model = model.eval()
    generator = torch.Generator().manual_seed(12345)
    images = torch.randn(batch_size, 3, side, side, generator=generator) * 50.0
    windows = torch.tensor([[0.0, 0.0, side, side]] * batch_size)
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(
            GraphModule(model).eval(), (images, windows), dynamo=True, input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), opset_version=opset,
            custom_translation_table=translation_table(target, roi_align_version),
            verbose=False)
    graph = program.model_proto
    names = class_names or ["BG"] + [f"class_{i}" for i in range(1, config.NUM_CLASSES)]
    info = ModelInfo(class_names=list(names), molding=config.molding_spec(), input_size=(side, side),
                     batch_size=batch_size, target=target, version=project_version(),
                     config={**config.to_dict(), "PRE_NMS_LIMIT_CLAMPED_FROM": clamped_from,
                             **({"ROIALIGN_TRT_VERSION": roi_align_version} if target == "trt" else {})})
    for key, value in info.to_metadata().items():
        graph.metadata_props.add(key=key, value=value)
    graph.producer_name, graph.producer_version = "mrcnn-edge", info.version
    save_onnx(graph, path, check=lambda tmp: onnx.checker.check_model(tmp, full_check=target == "onnx"))
    return ExportReport(path=path, target=target, seconds=time.perf_counter() - start,
                        size_bytes=os.path.getsize(path), pre_nms_limit=config.PRE_NMS_LIMIT, clamped_from=clamped_from)


def export_model(source, path: str, target: str = "onnx", class_names: Optional[List[str]] = None,
                 image_size: Optional[int] = None, clamp_pre_nms: bool = True, batch_size: int = 1,
                 opset: int = 17, roi_align_version: str = "2"):
    """Export the weights of the MaskRCNN ``source`` for ``target``: the config export_config
    makes of its own (PRE_NMS_LIMIT clamped where the target needs it and ``clamp_pre_nms``).
    Returns (ExportReport, the exported MaskRCNN, in eval mode)."""
    from model.maskrcnn import MaskRCNN

    config, clamped_from = export_config(source.config, image_size, target, clamp_pre_nms)
    if batch_size < 1:
        raise ExportError(f"--batch must be at least 1, got {batch_size}")
    model = MaskRCNN(config).eval()
    model.load_state_dict(source.state_dict())
    report = export_onnx(model, path, target, batch_size, class_names, opset, clamped_from, roi_align_version)
    return report, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.to_onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint .pt (from model.train / model.convert_h5) or .h5")
    parser.add_argument("--config", help="module:ConfigClass or JSON (for .h5 weights with non-default settings)")
    parser.add_argument("--image-size", type=int, help="input side, a multiple of 64 (default: IMAGE_MAX_DIM)")
    parser.add_argument("--target", default="onnx", choices=TARGETS)
    parser.add_argument("--batch", type=int, default=1, help="fixed batch size of the graph")
    parser.add_argument("--clamp-pre-nms", action="store_true",
                        help="lower PRE_NMS_LIMIT to what TensorRT accepts (3840 onnx, 4096 trt)")
    parser.add_argument("--roialign-version", default="2", choices=ROI_ALIGN_PLUGIN_VERSIONS,
                        help="trt target: ROIAlign_TRT plugin version; 2 needs TensorRT >= 10.1, "
                             "1 for JetPack 5 (TensorRT 8.5/8.6)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17: TensorRT 8.5 and later)")
    parser.add_argument("--output", default="model.onnx")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    args = parser.parse_args(argv)
    try:
        from model.detect import load_any

        check_output_path(args.output, "--output")
        source, class_names = load_any(args.weights, args.config)  # fails fast on bad weights
        side = args.image_size or source.config.IMAGE_MAX_DIM
        print(f"exporting {source.config.BACKBONE} {side}x{side} batch {args.batch} for target {args.target} ...",
              flush=True)
        report, model = export_model(source, args.output, args.target, class_names, args.image_size,
                                     args.clamp_pre_nms, args.batch, args.opset, args.roialign_version)
    except (WeightsError, ConfigError, ExportError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    clamp_note = f" (clamped from {report.clamped_from})" if report.clamped_from else ""
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.1f} MB) in {report.seconds:.0f} s; "
          f"PRE_NMS_LIMIT {report.pre_nms_limit}{clamp_note}")
    if not args.no_verify:
        from export.verify import verify_against_torch

        result = verify_against_torch(model, args.output)
        print(result.summary())
        if not result.ok:
            return 1
    print(f"next: python -m runtime.detect --model {args.output} IMAGES... --out overlays/   (here, torch-free)\n"
          f"      python -m export.to_trt --onnx {args.output} --precision fp16 --output "
          f"{os.path.splitext(args.output)[0]}.engine   (on the target GPU / Jetson)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
