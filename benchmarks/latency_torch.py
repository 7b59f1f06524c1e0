"""Latency of the PyTorch model on this machine's CPU.

    python -m benchmarks.latency_torch                          # R101, 1024 and 512
    python -m benchmarks.latency_torch --sizes 256 --runs 3     # quick look

For each input size it times, in one process: backbone+FPN alone, the whole graph
(``forward``: backbone to 28x28 masks, fixed size), and ``detect`` (molding + graph +
unmolding with full-size masks). Weights are random; DETECTION_MIN_CONFIDENCE defaults
to 0 so that all 100 detection slots are filled (the worst case for mask pasting).
Reports go to benchmarks/results/latency_torch.{md,json}.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from benchmarks.common import markdown_table, publish, sizes_parser, time_it
from model.config import Config
from model.maskrcnn import MaskRCNN
from runtime.molding import mold_images

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def measure(backbone: str, size: int, runs: int, warmup: int, min_confidence: float):
    config = Config(NAME="latency", BACKBONE=backbone, NUM_CLASSES=81, IMAGES_PER_GPU=1,
                    IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size, DETECTION_MIN_CONFIDENCE=min_confidence)
    torch.manual_seed(0)
    model = MaskRCNN(config).eval()
    # One synthetic image: random colour blocks, 4:3, so molding pads it. All three
    # stages see the same molded input, so their ratios are meaningful.
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = np.kron(blocks, np.ones((size // 16, size // 16, 1), np.uint8))  # [3/4 size, size, 3]
    batch = mold_images([image], config.molding_spec())
    molded = torch.from_numpy(batch.images)
    window = torch.from_numpy(batch.windows.astype(np.float32))
    found = []
    with torch.inference_mode():
        timings = [
            time_it("backbone+FPN", lambda: model.fpn(model.backbone(molded)), runs, warmup),
            time_it("forward (graph)", lambda: model(molded, window), runs, warmup),
            time_it("detect (mold+graph+unmold)", lambda: found.append(len(model.detect([image])[0])),
                    runs, warmup),
        ]
    return timings, found[-1]


def main(argv=None) -> int:
    parser = sizes_parser("python -m benchmarks.latency_torch", __doc__)
    parser.add_argument("--backbone", default="resnet101", choices=["resnet50", "resnet101"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-confidence", type=float, default=0.0)
    parser.add_argument("--output", default=os.path.join(RESULTS, "latency_torch"),
                        help="report path without extension")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, data = [], {"backbone": args.backbone, "runs": args.runs, "warmup": args.warmup, "sizes": {}}
    for size in args.sizes:
        print(f"measuring {args.backbone} at {size}x{size} ...", flush=True)
        timings, detections = measure(args.backbone, size, args.runs, args.warmup, args.min_confidence)
        graph = timings[1].median
        for t in timings:
            rows.append([f"{size}x{size}", t.name, f"{t.median:.3f}", f"{t.min:.3f} - {t.max:.3f}",
                         f"{t.iqr:.3f}", f"{t.median / graph:.2f}"])
            print(f"  {t.name:28} median {t.median:.3f} s  (min {t.min:.3f}, max {t.max:.3f})")
        data["sizes"][size] = {"timings": timings, "detections_in_detect": detections}
    body = (f"{args.backbone}, random weights, NUM_CLASSES 81, batch 1, {args.runs} runs after "
            f"{args.warmup} warm-up, {args.threads} threads. Seconds per image. The last column is "
            f"the ratio to the whole graph at the same size (same process, same molded input; "
            f"detect adds molding and pasting of the full-size masks).\n\n"
            + markdown_table(["input", "stage", "median s", "min - max", "IQR", "/ graph"], rows))
    publish(args.output, "PyTorch CPU latency", body, data,
            "python -m model.convert_h5 IN.h5 OUT.pt   (to run your own weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
