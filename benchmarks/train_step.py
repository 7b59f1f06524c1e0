"""Seconds per training step: float32 against bfloat16 autocast, in one process.

    python -m benchmarks.train_step                 # ShapesConfig (R50, 128x128, batch 4)
    python -m benchmarks.train_step --runs 5        # quicker

One step is ``model.training.loop.training_step``, what ``train_model`` does per batch:
forward (backbone to losses), backward, Matterport's global gradient clip and the SGD
update; channels-last, batch renormalization as in ``benchmarks/train_shapes.py``. Each
precision starts from the same random weights and cycles through the same 4 prepared
batches (data loading is not timed); warm-up steps first, then the median and spread of
--runs steps. Reports go to benchmarks/results/train_step.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys

import torch

from benchmarks.common import markdown_table, publish, time_it
from model.configs import ShapesConfig
from model.data.dataset import shapes_dataset
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


def step_timer(config, batches, precision: str, runs: int, warmup: int):
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

    return time_it(precision, step, runs, warmup)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(RESULTS, "train_step"))
    args = parser.parse_args(argv)
    config = dataclasses.replace(ShapesConfig(), TRAIN_BN=None, BATCH_RENORM=True)
    side = config.IMAGE_SHAPE[0]
    per_step = config.IMAGES_PER_GPU
    data = TrainingData(shapes_dataset(4 * per_step, side, side, seed=1), config, 0, 4 * per_step)
    data.set_epoch(0)
    batches = [sample_to_device(b, "cpu") for b in batch_loader(data, 4, config, dist_utils.setup(), 0)]
    timings = [step_timer(config, batches, precision, args.runs, args.warmup) for precision in PRECISIONS]
    base = timings[0].median
    rows = [[t.name, f"{t.median:.3f}", f"{t.iqr:.3f}", f"{t.min:.3f}", f"{t.max:.3f}",
             f"{t.median / per_step:.3f}", f"{base / t.median:.2f}x"] for t in timings]
    body = (f"ShapesConfig: {config.BACKBONE}, {side}x{side}, {per_step} images per step, all layers, batch "
            f"renormalization, channels-last; {args.warmup} warm-up steps, then {args.runs} timed.\n\n"
            + markdown_table(["precision", "median s/step", "IQR", "min", "max", "s/image", "speed-up"], rows))
    publish(args.output, "Training step time", body, {"timings": timings, "args": vars(args)},
            "python -m benchmarks.train_shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
