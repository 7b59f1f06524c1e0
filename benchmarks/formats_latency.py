"""Full-size latency of every CPU format, in one run: R101 at 1024x1024 and 512x512.

    python -m benchmarks.formats_latency                    # 1024 and 512, 5 runs each
    python -m benchmarks.formats_latency --sizes 512 --runs 3

ResNet101-FPN, 81 classes, random weights with every detection slot filled
(DETECTION_MIN_CONFIDENCE 0: 100 detections, the worst case for the heads), batch 1.
For each size: PyTorch (the graph, eager), and in ONNX Runtime the fp32 export, its
FP16 model (calibration.fp16), the INT8 CPU form and the INT8 TensorRT form
(calibration.int8, calibrated on 8 shapes images of that size). Latency is the model
alone (``forward`` / ``infer`` on one molded input), warm-up then --runs, median and
spread; ratios are against ONNX fp32 in the same process. Agreement with the fp32
export: detections matched one-to-one on 8 held-out images (calibration.agreement).
With random weights, agreement shows how far each format moves the fp32 model's outputs,
not accuracy (the shapes model's AP per format is benchmarks.run's table).
Reports: benchmarks/results/formats_latency.{md,json}.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from benchmarks.common import markdown_table, publish, sizes_parser, time_it

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(size: int, runs: int, warmup: int, folder: str):
    import torch

    from calibration.agreement import compare_models
    from calibration.fp16 import convert
    from calibration.int8 import run as quantize
    from export.to_onnx import export_config, export_onnx
    from model.config import Config
    from model.maskrcnn import MaskRCNN
    from runtime import open_model
    from runtime.molding import mold_images

    config = Config(NAME="latency", BACKBONE="resnet101", NUM_CLASSES=81, IMAGES_PER_GPU=1, IMAGE_MIN_DIM=size,
                    IMAGE_MAX_DIM=size, DETECTION_MIN_CONFIDENCE=0.0)
    config, clamped = export_config(config, None, "onnx", clamp_pre_nms=True)
    torch.manual_seed(0)
    model = MaskRCNN(config).eval()
    fp32 = os.path.join(folder, f"r101_{size}.onnx")
    export_onnx(model, fp32, "onnx", 1, clamped_from=clamped)
    paths = {"onnx fp32": fp32, "onnx fp16": convert(fp32).path}
    for quantized in quantize([fp32], "shapes", 8, "entropy", None, False, [])[0].models:
        paths[{"cpu": "onnx int8 (CPU form)", "tensorrt": "onnx int8 (TensorRT form)"}[quantized.form]] = quantized.path
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), np.ones((size // 16, size // 16, 1), np.uint8))
    molded = mold_images([image], config.molding_spec())
    windows = molded.windows.astype(np.float32)
    with torch.inference_mode():
        timings = {"torch (eager)": time_it("torch", lambda: model(torch.from_numpy(molded.images),
                                                                    torch.from_numpy(windows)), runs, warmup)}
    agreements = {}
    for name, path in paths.items():
        detector = open_model(path, providers="cpu", threads=torch.get_num_threads())
        timings[name] = time_it(name, lambda d=detector: d.infer(molded.images, windows), runs, warmup)
        if name != "onnx fp32":
            agreements[name] = compare_models(fp32, path)
    sizes = {name: os.path.getsize(path) / 1e6 for name, path in paths.items()}
    return timings, agreements, sizes


def main(argv=None) -> int:
    parser = sizes_parser("python -m benchmarks.formats_latency", __doc__)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "formats_latency"))
    args = parser.parse_args(argv)
    rows, data = [], {}
    with tempfile.TemporaryDirectory(prefix="formats.") as folder:
        for size in args.sizes:
            timings, agreements, sizes = measure(size, args.runs, args.warmup, folder)
            base = timings["onnx fp32"].median
            for name, t in timings.items():
                a = agreements.get(name)
                rows.append([f"{size}x{size}", name, f"{sizes[name]:.0f}" if name in sizes else "-",
                             f"{t.median:.3f}", f"{t.min:.3f} - {t.max:.3f}", f"{base / t.median:.2f}x",
                             f"{100 * a.matched_share:.1f}% / {a.mean_mask_iou:.3f}" if a else "-"])
            data[size] = {"timings": timings, "sizes_mb": sizes,
                          "agreement": {k: {"matched_share": a.matched_share, "mean_mask_iou": a.mean_mask_iou,
                                            "matched": a.matched, "reference": a.reference_detections,
                                            "extra": a.extra, "max_box_diff": a.max_box_diff,
                                            "max_score_diff": a.max_score_diff} for k, a in agreements.items()}}
    body = (f"ResNet101-FPN, 81 classes, random weights, 100 detections, batch 1, {args.runs} runs after "
            f"{args.warmup} warm-up; the model alone (no molding or unmolding). Speed-up against ONNX fp32 in the "
            f"same process. Agreement with the fp32 export on 8 held-out images: detections matched one-to-one "
            f"(same class, box within 4 px, score within 0.1) / mean mask IoU of the pairs.\n\n"
            + markdown_table(["input", "format", "MB", "median s", "min - max", "speed-up", "matched / mask IoU"],
                             rows))
    publish(args.output, "Latency of every CPU format (R101)", body, {"sizes": data, "runs": args.runs},
            "python -m benchmarks.run --weights benchmarks/artifacts/shapes_r50.pt   (AP of every format)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
