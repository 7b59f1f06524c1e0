"""Seconds per training step: float32 against bfloat16 autocast, and the widths of the
FPN and heads, in one process.

    python -m benchmarks.train_step                 # ShapesConfig (R50, 128x128, batch 4), both precisions
    python -m benchmarks.train_step --runs 5        # quicker
    python -m benchmarks.train_step --optimizer Adam --precisions bf16 --widths 256/1024 128/512
        # Matterport's widths against benchmarks.train_shapes' (TOP_DOWN_PYRAMID_SIZE/FPN_CLASSIF_FC_LAYERS_SIZE)
    python -m benchmarks.train_step --optimizer Adam --precisions bf16 --widths 128/512 --mask-pool-sizes 14 7
        # 28x28 masks (Matterport's) against 14x14 (MASK_POOL_SIZE 7: train_shapes --mask-pool-size 7)

One step is ``model.training.loop.training_step``, what ``train_model`` does per batch:
forward (backbone to losses), backward, Matterport's global gradient clip and the update
(--optimizer, SGD by default); channels-last, batch renormalization as in
``benchmarks/train_shapes.py``. Each variant starts from the same seed and cycles through
the same 4 prepared batches of --style shapes (data loading is not timed); warm-up steps
first, then --runs steps of every variant in turn (interleaved, so that a change in the
machine's speed touches all alike): median and spread. Reports go to
benchmarks/results/train_step.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
from typing import Tuple

import torch

from benchmarks.common import markdown_table, publish, time_interleaved
from benchmarks.train_shapes import DEFAULT_LR
from model.config import OPTIMIZERS, with_mask_pool_size
from model.configs import ShapesConfig
from model.data.dataset import SHAPES_STYLES, shapes_dataset
from model.data.pipeline import TrainingData
from model.maskrcnn import MaskRCNN
from model.training import distributed as dist_utils
from model.training.loop import (
    PRECISIONS,
    TrainingModel,
    batch_loader,
    decayed_parameters,
    make_optimizer,
    sample_to_device,
    to_training_layout,
    training_step,
)

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def step_function(config, batches, precision: str):
    """One training step of a fresh model (seed 0) per call, cycling through ``batches``."""
    torch.manual_seed(0)
    model = MaskRCNN(config).train(True)
    to_training_layout(model, "cpu")
    wrapped = TrainingModel(model, precision)
    parameters = list(model.parameters())
    decayed = decayed_parameters(model)
    optimizer = make_optimizer(parameters, config, config.LEARNING_RATE)
    cycle = itertools.cycle(batches)

    def step():
        training_step(wrapped, optimizer, next(cycle), torch.Generator().manual_seed(0), config, parameters, decayed)

    return step


def widths(text: str) -> Tuple[int, int]:
    """"256/1024" -> (TOP_DOWN_PYRAMID_SIZE, FPN_CLASSIF_FC_LAYERS_SIZE)."""
    try:
        pyramid, dense = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give PYRAMID/DENSE widths, e.g. 128/512") from None
    return pyramid, dense


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--widths", nargs="+", type=widths, default=[widths("256/1024")],
                        help="TOP_DOWN_PYRAMID_SIZE/FPN_CLASSIF_FC_LAYERS_SIZE pairs (ShapesConfig: 256/1024)")
    parser.add_argument("--mask-pool-sizes", nargs="+", type=int, default=[ShapesConfig.MASK_POOL_SIZE],
                        help="MASK_POOL_SIZE values (MASK_SHAPE twice each; ShapesConfig: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="SGD")
    parser.add_argument("--style", choices=tuple(SHAPES_STYLES), default="standard", help="the shapes trained on")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", default=os.path.join(RESULTS, "train_step"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = dataclasses.replace(ShapesConfig(), TRAIN_BN=None, BATCH_RENORM=True, OPTIMIZER=args.optimizer,
                                 LEARNING_RATE=DEFAULT_LR[args.optimizer])
    side, per_step = config.IMAGE_SHAPE[0], config.IMAGES_PER_GPU
    data = TrainingData(shapes_dataset(4 * per_step, side, side, seed=1, style=SHAPES_STYLES[args.style]),
                        config, 0, 4 * per_step)
    data.set_epoch(0)  # the batches do not depend on widths or mask size: prepared once for every variant
    batches = [sample_to_device(b, "cpu") for b in batch_loader(data, 4, config, dist_utils.setup(), 0)]
    steps = {}
    for (pyramid, dense), pool, precision in itertools.product(args.widths, args.mask_pool_sizes, args.precisions):
        config = with_mask_pool_size(dataclasses.replace(config, TOP_DOWN_PYRAMID_SIZE=pyramid,
                                                         FPN_CLASSIF_FC_LAYERS_SIZE=dense), pool)
        masks = "x".join(map(str, config.MASK_SHAPE))
        steps[f"{pyramid}/{dense} {masks} {precision}"] = step_function(config, batches, precision)
    timings = time_interleaved(steps, args.runs, args.warmup)
    base = timings[0].median
    rows = [[t.name, f"{t.median:.3f}", f"{t.iqr:.3f}", f"{t.min:.3f}", f"{t.max:.3f}",
             f"{t.median / per_step:.3f}", f"{base / t.median:.2f}x"] for t in timings]
    body = (f"ShapesConfig: {config.BACKBONE}, {side}x{side}, {per_step} images per step ({args.style} shapes), "
            f"all layers, batch renormalization, channels-last, {args.optimizer}, {torch.get_num_threads()} threads; "
            f"variants named widths (TOP_DOWN_PYRAMID_SIZE/FPN_CLASSIF_FC_LAYERS_SIZE), mask size (MASK_SHAPE) "
            f"and precision; "
            f"{args.warmup} warm-up steps each, then {args.runs} timed, interleaved.\n\n"
            + markdown_table(["variant", "median s/step", "IQR", "min", "max", "s/image", "speed-up"], rows))
    publish(args.output, "Training step time", body, {"timings": timings, "args": vars(args)},
            "python -m benchmarks.train_shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
