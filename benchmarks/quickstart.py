"""The whole pipeline on small built-in data, in one command: train, export, INT8/FP16,
detect, the video loop and the benchmark table.

    python -m benchmarks.quickstart                      # shapes, trained here (about 13 minutes on 2 cores)
    python -m benchmarks.quickstart --train-minutes 5 --min-epochs 2   # fewer epochs (a weaker model)
    python -m benchmarks.quickstart --weights my.pt --dataset coco --data /data/coco   # your own model and data

Steps, each writing under --output-dir (default ``quickstart/``):
1. train a shapes model from scratch (ResNet50, 128x128, a 256-wide box head, batch
   renormalization, Adam at lr 3e-4; bfloat16 where the CPU has bfloat16 instructions)
   for --train-minutes: the first epoch is timed, then as many epochs as fit, but at least
   --min-epochs (8; a slower CPU takes longer rather than ship a weak model), the last
   fifth at a 10x lower learning rate (skipped with --weights). On 2 CPU cores, 9
   minutes are about 9 epochs; mask AP50 on held-out shapes was 0.60 after 6 epochs, 0.85
   after 7 and 0.92-0.94 after 11 (README; SGD at 0.01, Matterport's optimizer, gave 0.40
   after 11);
2. export it for both targets (``--target onnx`` and ``--target trt``), verified against
   PyTorch on fresh images;
3. calibrate INT8 (TensorRT's Q/DQ form for both exports, ONNX Runtime's CPU form) and
   convert to FP16;
4. detect on held-out images with the INT8 CPU model (``runtime.detect``: overlays + COCO JSON);
5. run the video loop on a generated clip (``runtime.video``: annotated .mp4 + summary);
6. the benchmark table of every format (``benchmarks.run``), with its gates: ONNX fp32
   within --max-onnx-drop AP points of PyTorch, INT8 within --max-int8-drop.
It ends by listing every file it wrote and the commands to go further.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_SEED = 1


class EpochPlan(NamedTuple):
    epochs: int  # in all
    fine: int  # of which the last ones at the low rate
    fit: int  # how many fit the budget at the first epoch's pace


def plan_epochs(minutes: float, first_epoch_s: float, min_epochs: int) -> EpochPlan:
    """The epochs for a budget of ``minutes`` when one epoch took ``first_epoch_s`` seconds:
    as many as fit, at least ``min_epochs`` (and 2), a fifth of them (at least 1) at the
    low rate."""
    fit = int(minutes * 60 / first_epoch_s)
    epochs = max(2, min_epochs, fit)
    return EpochPlan(epochs, max(1, epochs // 5), fit)


def train(folder: str, minutes: float, min_epochs: int):
    """Train the shapes model for about ``minutes`` (at least ``min_epochs`` epochs);
    returns the checkpoint path."""
    import torch

    from benchmarks.common import has_bf16
    from model.configs import ShapesConfig
    from model.data.dataset import shapes_dataset
    from model.maskrcnn import MaskRCNN
    from model.training.loop import checkpoint_path, train_model

    torch.manual_seed(0)
    # A shapes image holds at most four objects: 20 detection slots instead of 100 make the
    # exported graph's mask head (run on every slot) five times cheaper.
    # A 256-wide box head instead of 1024: its first layer (a 7x7x256 -> F dense layer) is the
    # largest tensor of the model, and training on 2 CPU cores is bound by passes over the weights.
    # Adam at 3e-4: from scratch it learns masks about three times sooner than SGD at 0.01 (README).
    config = dataclasses.replace(ShapesConfig(), TRAIN_BN=None, BATCH_RENORM=True, DETECTION_MAX_INSTANCES=20,
                                 FPN_CLASSIF_FC_LAYERS_SIZE=256, OPTIMIZER="Adam", LEARNING_RATE=3e-4)
    side = config.IMAGE_SHAPE[0]
    train_set = shapes_dataset(4000, side, side, TRAIN_SEED)
    val_set = shapes_dataset(20, side, side, TRAIN_SEED + 100)
    model = MaskRCNN(config)
    precision = "bf16" if has_bf16() else "fp32"
    common = dict(layers="all", log_dir=os.path.join(folder, "logs"), class_names=train_set.class_names,
                  precision=precision)
    print(f"1. training: {config.BACKBONE} {side}x{side}, {config.OPTIMIZER} lr {config.LEARNING_RATE:g}, {precision}, "
          f"about {minutes:g} min", flush=True)
    start = time.perf_counter()
    run = train_model(model, train_set, val_set, config.LEARNING_RATE, 1, **common)
    per_epoch = time.perf_counter() - start
    epochs, fine, fit = plan_epochs(minutes, per_epoch, min_epochs)
    floor = f" (--min-epochs: {fit} fit in {minutes:g} min)" if epochs > max(2, fit) else ""
    print(f"   one epoch took {per_epoch:.0f} s: {epochs} epochs{floor}, the last {fine} at lr "
          f"{config.LEARNING_RATE / 10:g}", flush=True)
    # A new optimizer for each stage, as the README's figures were measured (train_shapes
    # compares carrying it: README "Restarting the optimizer").
    run.optimizer_state = None
    if epochs - fine > 1:
        run = train_model(model, train_set, val_set, config.LEARNING_RATE, epochs - fine, run=run, **common)
        run.optimizer_state = None
    run = train_model(model, train_set, val_set, config.LEARNING_RATE / 10, epochs, run=run, **common)
    weights = os.path.join(folder, "shapes.pt")
    shutil.copyfile(checkpoint_path(run.run_dir, config.NAME, run.epoch), weights)
    print(f"   trained in {(time.perf_counter() - start) / 60:.1f} min -> {weights}", flush=True)
    return weights


def step(title: str, function, *args) -> None:
    """Run a CLI's main(); stop the quickstart with its status when it fails."""
    print(title, flush=True)
    status = function(list(args))
    if status not in (0, None):
        raise SystemExit(status)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quickstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="your checkpoint (.pt) or Keras .h5: skip the training")
    parser.add_argument("--dataset", default="shapes", help="benchmark data: shapes | coco | module:Class")
    parser.add_argument("--data", help="dataset path for --dataset coco or yours")
    parser.add_argument("--train-minutes", type=float, default=9.0,
                        help="training time budget (default 9: the whole quickstart in about 13 minutes)")
    parser.add_argument("--min-epochs", type=int, default=8,
                        help="train at least this many epochs however long they take (default 8: below "
                             "7 the model is weak; README)")
    parser.add_argument("--eval-images", type=int, default=100, help="held-out images per format in the table")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--max-onnx-drop", type=float, default=0.5, help="AP points ONNX fp32 may lose")
    parser.add_argument("--max-int8-drop", type=float, default=2.0, help="AP points INT8 may lose")
    parser.add_argument("--output-dir", default="quickstart")
    args = parser.parse_args(argv)
    from benchmarks import run as benchmark
    from calibration import fp16, int8
    from export import to_onnx
    from runtime import detect, video

    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    weights = args.weights or train(out, args.train_minutes, args.min_epochs)
    formats = os.path.join(out, "formats")
    os.makedirs(formats, exist_ok=True)
    onnx_path, trt_path = os.path.join(formats, "model_onnx.onnx"), os.path.join(formats, "model_trt.onnx")
    step("2. export (onnx target, verified against PyTorch)", to_onnx.main,
         "--weights", weights, "--clamp-pre-nms", "--output", onnx_path)
    step("   export (trt target)", to_onnx.main, "--weights", weights, "--clamp-pre-nms", "--target", "trt",
         "--output", trt_path)
    data = "shapes" if args.dataset == "shapes" else args.data
    step("3. INT8 calibration", int8.main, "--onnx", onnx_path, trt_path, "--data", data,
         "--num-images", str(args.calibration_images))
    step("   FP16", fp16.main, "--onnx", onnx_path)
    images = os.path.join(out, "images")
    write_sample_images(images, onnx_path)
    int8_cpu = os.path.join(formats, "model_onnx.int8-cpu.onnx")
    step("4. detect (INT8 CPU model)", detect.main, "--model", int8_cpu, images,
         "--out", os.path.join(out, "overlays"), "--json", os.path.join(out, "detections.json"))
    clip = write_clip(os.path.join(out, "clip.mp4"))
    step("5. video loop (INT8 CPU model)", video.main, "--model", int8_cpu,
         "--source", clip, "--output", os.path.join(out, "annotated.mp4"))
    dataset_args = ["--dataset", args.dataset] + (["--data", args.data] if args.data else [])
    status = benchmark.main(["--weights", weights, *dataset_args, "--eval-images", str(args.eval_images),
                             "--calibration-images", str(args.calibration_images),
                             # its own exports: AP is scored over the whole PR curve (DETECTION_MIN_CONFIDENCE
                             # 0), while the deployable files above keep the model's threshold in the graph
                             "--artifacts", os.path.join(out, "benchmark_formats"),
                             "--max-ap-drop", f"onnx={args.max_onnx_drop},onnx-int8={args.max_int8_drop}",
                             "--output", os.path.join(out, "benchmark")])
    print(f"\nquickstart finished in {(time.perf_counter() - started) / 60:.1f} min; in {out}/:")
    for name in ("shapes.pt", "formats/model_onnx.onnx", "formats/model_trt.onnx", "formats/model_onnx.int8.onnx",
                 "formats/model_onnx.int8-cpu.onnx", "formats/model_trt.int8.onnx", "formats/model_onnx.fp16.onnx",
                 "overlays/", "detections.json", "annotated.mp4", "annotated.mp4.json", "benchmark.md",
                 "benchmark_formats/"):
        if os.path.exists(os.path.join(out, name.rstrip("/"))):
            print(f"  {name}")
    print(f"next: python -m runtime.video --model {int8_cpu} --source 0 --show   (a camera)\n"
          f"      python -m model.inspect --weights {os.path.join(out, 'shapes.pt')} --compare {int8_cpu} "
          f"--out {os.path.join(out, 'inspect')}   (every stage, and INT8 beside PyTorch)\n"
          f"      python -m export.to_trt --onnx {trt_path} --precision fp16   (on the GPU / Jetson)")
    return status


def write_sample_images(folder: str, onnx_path: str, count: int = 4) -> None:
    """Held-out shapes images (another seed than training and evaluation) as PNG files."""
    from PIL import Image

    from export.verify import verification_images

    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(verification_images(128, count=count, seed=4242)):
        Image.fromarray(image).save(os.path.join(folder, f"shapes_{i}.png"))


def write_clip(path: str, frames: int = 90) -> str:
    from benchmarks.runtime_latency import write_clip as clip

    return clip(path, frames, 240, 320)


if __name__ == "__main__":
    sys.exit(main())
