"""Train Mask R-CNN from scratch on synthetic shapes on this CPU, then evaluate.

    python -m benchmarks.train_shapes              # the full run (about 30 min on 2 cores; see README)
    python -m benchmarks.train_shapes --quick      # a 1-minute smoke run (the README set-up command)

ShapesConfig (ResNet50, 128x128, batch 4), all layers, SGD with momentum, --epochs at
--lr then --fine-epochs at a 10x lower rate. From scratch there are no ImageNet
statistics for Matterport's frozen BN, and plain batch statistics on batches of 4
flat-background images leave a large train/inference gap (the network leans on
per-batch statistics; see the README), so BN trains with Batch Renormalization
(TRAIN_BN None, BATCH_RENORM True): it normalises with the moving statistics that
inference (and the exported graph) uses. The network runs under bfloat16 autocast
(--precision; 1.5x faster per step on this AMX CPU, see benchmarks/train_step.py).
Evaluation uses shapes drawn with another seed (never seen in training),
DETECTION_MIN_CONFIDENCE 0, float32, COCO box/mask AP through pycocotools and
Matterport's mAP@0.5. The checkpoint is kept at benchmarks/artifacts/shapes_r50.pt for
later benchmarks (export, calibration); reports go to benchmarks/results/train_shapes.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

import torch

from benchmarks.common import markdown_table, publish
from model.configs import ShapesConfig
from model.data.dataset import shapes_dataset
from model.evaluate import evaluate
from model.maskrcnn import MaskRCNN
from model.training.loop import checkpoint_path, train_model

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACT = os.path.join(HERE, "artifacts", "shapes_r50.pt")
TRAIN_SEED, EVAL_SEED = 1, 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=16, help="epochs at the base learning rate")
    parser.add_argument("--fine-epochs", type=int, default=4, help="further epochs at a 10x lower rate")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch (4 images each)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the pipeline")
    parser.add_argument("--log-dir", default=os.path.join(HERE, "artifacts", "logs"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_shapes"))
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.fine_epochs, args.steps, args.eval_images = 1, 1, 5, 10
        args.output += "_quick"
    torch.manual_seed(0)
    config = dataclasses.replace(ShapesConfig(), STEPS_PER_EPOCH=args.steps, TRAIN_BN=None, BATCH_RENORM=True)
    side = config.IMAGE_SHAPE[0]
    train_set = shapes_dataset(args.train_images, side, side, TRAIN_SEED)
    val_set = shapes_dataset(50, side, side, TRAIN_SEED + 100)
    model = MaskRCNN(config)
    common = dict(layers="all", log_dir=args.log_dir, class_names=train_set.class_names, precision=args.precision)
    start = time.perf_counter()
    run = train_model(model, train_set, val_set, args.lr, args.epochs, **common)
    if args.fine_epochs:
        run = train_model(model, train_set, val_set, args.lr / 10, args.epochs + args.fine_epochs, run=run, **common)
    train_seconds = time.perf_counter() - start
    last = checkpoint_path(run.run_dir, config.NAME, run.epoch)
    os.makedirs(os.path.dirname(ARTIFACT), exist_ok=True)
    if not args.quick:
        shutil.copyfile(last, ARTIFACT)

    model.config = dataclasses.replace(config, DETECTION_MIN_CONFIDENCE=0.0)
    held_out = shapes_dataset(args.eval_images, side, side, EVAL_SEED)
    started = time.perf_counter()
    result = evaluate(model, held_out)
    eval_seconds = time.perf_counter() - started
    total = train_seconds + eval_seconds

    curve = [[h["epoch"], f"{h['loss']:.3f}", f"{h.get('val_loss', float('nan')):.3f}",
              f"{h['mrcnn_mask_loss']:.3f}", f"{h.get('val_mrcnn_mask_loss', float('nan')):.3f}"]
             for h in run.history]
    target_met = result.mask["AP50"] >= 0.90 and total <= 30 * 60
    body = (f"From scratch, {args.epochs} epochs at lr {args.lr} + {args.fine_epochs} at lr {args.lr / 10}, "
            f"batch renormalization, {args.precision}; {args.steps} steps of 4 images each; "
            f"{args.train_images} training images (seed {TRAIN_SEED}), evaluated (float32) on "
            f"{args.eval_images} held-out images (seed {EVAL_SEED}).\n\n"
            f"Time: training {train_seconds / 60:.1f} min, evaluation {eval_seconds / 60:.1f} min, "
            f"total {total / 60:.1f} min.\n\n"
            + markdown_table(["", "AP", "AP50", "AP75", "APs", "APm", "APl"],
                             [[k] + [f"{v:.3f}" for v in getattr(result, k).values()] for k in ("box", "mask")])
            + f"\n\nMatterport mAP@0.5 (masks): {result.voc_map50:.3f}. "
            + ("(--quick: a smoke run, not a target run.)\n\n" if args.quick else
               f"Target mask AP50 >= 0.90 within 30 min: {'met' if target_met else 'NOT met'}.\n\n")
            + "Loss per epoch (mean over the epoch's steps; validation on 50 other images, "
              "inference-mode BN):\n\n"
            + markdown_table(["epoch", "train loss", "val loss", "train mask loss", "val mask loss"], curve))
    publish(args.output, "Shapes from scratch on the CPU", body, {
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "evaluation": result.summary(),
        "history": run.history, "checkpoint": last, "target_met": target_met, "args": vars(args)},
        f"python -m model.evaluate --dataset shapes --weights {ARTIFACT if not args.quick else last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
