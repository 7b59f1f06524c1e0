"""Export time, ONNX size and ONNX Runtime CPU latency, and what the PRE_NMS_LIMIT clamp
costs in AP.

    python -m benchmarks.export_onnx                      # R101 at 1024 and 512, both targets
    python -m benchmarks.export_onnx --sizes 512 --runs 3

Latency: the exported ``onnx`` target in ONNX Runtime against the PyTorch graph on the
same molded input, in one process (warm-up, median and spread). The ``trt`` target
holds TensorRT plugins, which ONNX Runtime runs only through slow Python reference
implementations, so its CPU latency is not reported (its export time and size are).

AP cost of the clamp: the shapes model from benchmarks/train_shapes.py (when its
checkpoint exists) evaluated on held-out shapes with the config's PRE_NMS_LIMIT and with
the clamped values (3840 for TensorRT's TopK, 4096 for EfficientNMS), in PyTorch and in
the exported graph. At 128x128 there are only 4092 anchors, so this measures the clamp
on that model only; COCO-size inputs (261888 anchors at 1024) need COCO weights and data.
Reports: benchmarks/results/export_onnx.{md,json}.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile

import numpy as np
import torch

from benchmarks.common import markdown_table, publish, sizes_parser, time_it
from export.to_onnx import export_model, export_onnx
from model.config import Config
from model.maskrcnn import MaskRCNN
from runtime.detector import OnnxDetector
from runtime.molding import mold_images

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES_CHECKPOINT = os.path.join(HERE, "artifacts", "shapes_r50.pt")


def latency_rows(size: int, runs: int, warmup: int, folder: str):
    config = Config(NAME="bench", NUM_CLASSES=81, IMAGES_PER_GPU=1, IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size,
                    DETECTION_MIN_CONFIDENCE=0.0)
    rows, data = [], {}
    torch.manual_seed(0)
    base = MaskRCNN(config).eval()
    image = np.kron(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8),
                    np.ones((size // 16, size // 16, 1), np.uint8))
    molded = mold_images([image], config.molding_spec())
    windows = molded.windows.astype(np.float32)
    for target in ("onnx", "trt"):
        path = os.path.join(folder, f"r101_{size}_{target}.onnx")
        report, model = export_model(base, path, target)
        entry = {"export_seconds": report.seconds, "onnx_mb": report.size_bytes / 1e6,
                 "pre_nms_limit": report.pre_nms_limit}
        if target == "onnx":
            detector = OnnxDetector(path, threads=torch.get_num_threads())
            with torch.inference_mode():
                torch_t = time_it("pytorch", lambda m=model: m(torch.from_numpy(molded.images),
                                                                torch.from_numpy(windows)), runs, warmup)
            ort_t = time_it("onnxruntime", lambda d=detector: d.infer(molded.images, windows), runs, warmup)
            entry.update(pytorch=torch_t, onnxruntime=ort_t)
            rows.append([f"{size}", target, f"{report.seconds:.0f}", f"{entry['onnx_mb']:.0f}", report.pre_nms_limit,
                         f"{ort_t.median:.3f} ({ort_t.min:.3f}-{ort_t.max:.3f})",
                         f"{torch_t.median:.3f} ({torch_t.min:.3f}-{torch_t.max:.3f})",
                         f"{ort_t.median / torch_t.median:.2f}"])
        else:
            rows.append([f"{size}", target, f"{report.seconds:.0f}", f"{entry['onnx_mb']:.0f}", report.pre_nms_limit,
                         "n/a (TensorRT plugins)", "", ""])
        data[target] = entry
        os.remove(path)
    return rows, data


def clamp_rows(folder: str, images: int):
    """AP of the shapes model with the configured and the clamped PRE_NMS_LIMIT."""
    from model.data.dataset import shapes_dataset
    from model.evaluate import evaluate
    from model.weights.checkpoint import load_model

    if not os.path.isfile(SHAPES_CHECKPOINT):
        return [], {"skipped": f"{SHAPES_CHECKPOINT} not found; run python -m benchmarks.train_shapes first"}
    trained, checkpoint = load_model(SHAPES_CHECKPOINT)
    held_out = shapes_dataset(images, 128, 128, seed=2)
    rows, data = [], {}
    for limit in (checkpoint.config.PRE_NMS_LIMIT, 4096, 3840):
        config = dataclasses.replace(checkpoint.config, PRE_NMS_LIMIT=limit, DETECTION_MIN_CONFIDENCE=0.0)
        model = MaskRCNN(config).eval()
        model.load_state_dict(trained.state_dict())
        torch_eval = evaluate(model, held_out, progress=False)
        onnx_eval = None
        if limit <= 3840:  # exportable for the onnx target as it is
            path = os.path.join(folder, f"shapes_{limit}.onnx")
            export_onnx(model, path, "onnx", 1, checkpoint.class_names)
            onnx_eval = evaluate(OnnxDetector(path), held_out, progress=False)
        rows.append([limit, f"{torch_eval.box['AP']:.4f}", f"{torch_eval.mask['AP']:.4f}",
                     f"{torch_eval.mask['AP50']:.4f}",
                     f"{onnx_eval.mask['AP']:.4f}" if onnx_eval else "(not exportable unclamped)"])
        data[limit] = {"torch": torch_eval.summary(), "onnx": onnx_eval.summary() if onnx_eval else None}
    return rows, data


def main(argv=None) -> int:
    parser = sizes_parser("python -m benchmarks.export_onnx", __doc__)
    parser.add_argument("--clamp-images", type=int, default=200, help="held-out shapes images for the clamp AP")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "export_onnx"))
    args = parser.parse_args(argv)
    rows, data = [], {"runs": args.runs, "warmup": args.warmup, "sizes": {}}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            print(f"exporting and timing R101 at {size}x{size} ...", flush=True)
            size_rows, data["sizes"][size] = latency_rows(size, args.runs, args.warmup, folder)
            rows += size_rows
        print("measuring the AP cost of the PRE_NMS_LIMIT clamp ...", flush=True)
        ap_rows, data["clamp"] = clamp_rows(folder, args.clamp_images)
    body = ("ResNet101, random weights, NUM_CLASSES 81, batch 1; PRE_NMS_LIMIT clamped to what TensorRT takes. "
            f"Latency: seconds per image, median (min-max) of {args.runs} runs after {args.warmup} warm-up, "
            f"{torch.get_num_threads()} threads, ONNX Runtime and PyTorch on the same molded input.\n\n"
            + markdown_table(["input", "target", "export s", "ONNX MB", "PRE_NMS_LIMIT", "ONNX Runtime s",
                              "PyTorch s", "ORT / PyTorch"], rows))
    if ap_rows:
        body += ("\n\nAP cost of the clamp (shapes model, 128x128 = 4092 anchors, "
                 f"{args.clamp_images} held-out images):\n\n"
                 + markdown_table(["PRE_NMS_LIMIT", "PyTorch box AP", "PyTorch mask AP", "PyTorch mask AP50",
                                   "exported mask AP"], ap_rows))
    else:
        body += f"\n\nAP cost of the clamp: {data['clamp']['skipped']}"
    publish(args.output, "ONNX export: time, size, CPU latency, clamp cost", body, data,
            "python -m export.to_trt --onnx MODEL.onnx --precision fp16   (on the target GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
