"""Train Mask R-CNN from scratch on synthetic shapes on this CPU, then evaluate on two
held-out sets: the same generator (another seed) and an out-of-distribution set.

    python -m benchmarks.train_shapes              # the full run (30 min of training on 2 CPU cores; see README)
    python -m benchmarks.train_shapes --budget-minutes 0   # every planned epoch, however long it takes
    python -m benchmarks.train_shapes --late-epochs 0      # no late stage on mosaics: varied data to the end
    python -m benchmarks.train_shapes --style standard --augment flip --easy-epochs 0 --late-epochs 0   # plain data
    python -m benchmarks.train_shapes --optimizer SGD --output benchmarks/results/train_shapes   # Matterport's SGD
    python -m benchmarks.train_shapes --schedule linear --peak-lr 6e-4 --fine-epochs 0 --late-epochs 0   # decay to 0
    python -m benchmarks.train_shapes --set TRAIN_ROIS_PER_IMAGE=50 --set ROI_POSITIVE_RATIO=0.2   # any Config value
    python -m benchmarks.train_shapes --quick      # a 1-minute smoke run

ShapesConfig (ResNet50, 128x128, --batch-size 4, 400 images an epoch), all layers, Adam
(--optimizer SGD: Matterport's SGD with momentum), up to --epochs (40) at --lr then
--fine-epochs (3) at a 10x lower rate, cut to fit --budget-minutes (30) of training: after
each epoch the schedule drops epochs at the base rate when the rest would not fit at the
pace measured so far (the report says how many ran). The first --easy-epochs of them (a
curriculum; 3 by default) train on standard shapes with a flip, the rest on --style:
standard (Matterport's toy set), wide (WIDE_SHAPES: non-square frames, gradient and noisy
backgrounds, 1-6 smaller, more overlapping shapes), varied (VARIED_SHAPES, the default:
wide plus turned shapes and cluttered backgrounds) or mosaic (MOSAIC_SHAPES: varied plus,
on half the images, a mosaic of hard-edged cells) or periodic (PERIODIC_SHAPES: varied
plus, on half the images, stripes or two crossed gratings), with --augment: flip
(Matterport's), default (the default: flip, scale/aspect jitter with crop/pad, colour
jitter, noise, blur; model.data.augment) or none. Without the curriculum varied data
learns masks late and ends far lower (README). The FPN, RPN and heads run at half
Matterport's widths (--pyramid-size 128, --fc-size 512): a step takes 1.3x less time, so
more epochs fit the budget (at Matterport's widths the OOD figure followed the epochs; README:
what this recipe, each seed and each variant scored; benchmarks.ood_factors for what each
factor of that set costs). --mask-pool-size 7 (14x14 masks instead of Matterport's 28x28)
quarters the mask head's work; it fits more epochs but costs ~0.1 mask AP (README).
The last --late-epochs (6) at the base rate and the --fine-epochs train on --late-style
(mosaic: MOSAIC_SHAPES) instead of --style: hard-edged backgrounds once the shapes are
learned (README: with them three of four budget runs met the goals; --late-epochs 0
trains on --style to the end, the recipe before).
--average-decay D keeps a moving average of the weights (model.training.average),
reports it beside the live weights and keeps it as the artifact;
--schedule linear replaces the two rates after the easy epochs by a linear decay from
--peak-lr towards zero over the epochs that fit the budget, re-planned after each epoch
(both off by default: neither helped here, README).
From scratch there are no ImageNet statistics for Matterport's frozen BN, and plain batch
statistics on batches of 4 flat-background images leave a large train/inference gap, so
BN trains with Batch Renormalization (TRAIN_BN None, BATCH_RENORM True): it normalises
with the moving statistics that inference (and the exported graph) uses. --precision
auto takes bfloat16 autocast where the CPU has bf16 instructions (1.5x faster per step
with AMX, benchmarks/train_step.py) and float32 elsewhere (emulated bf16 is ~10x slower).

Evaluation (float32, DETECTION_MIN_CONFIDENCE 0, IMAGE_MAX_DIM --eval-max-dim: 192, the
OOD set's longest side, so none of its images is shrunk as at the 128 of training; COCO
box/mask AP through pycocotools and Matterport's mAP@0.5): "same generator" = standard
shapes drawn with another seed, "out of distribution" = benchmarks.shapes_ood (textured
backgrounds, tilted and anti-aliased shapes, non-square frames, smaller and more crowded
objects), written once as PNGs + COCO JSON under benchmarks/artifacts/shapes_ood/, also
scored by background texture (mask AP, shapes found and false detections at score 0.5). The
checkpoint goes to --artifact (default benchmarks/artifacts/shapes_r50.pt) for later
benchmarks; reports to --output.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import Dict, NamedTuple

import torch

from benchmarks import shapes_ood
from benchmarks.common import has_bf16, markdown_table, publish
from model.config import OPTIMIZERS, ConfigError, with_mask_pool_size
from model.config_loading import setting_argument, with_settings
from model.configs import ShapesConfig
from model.data.augment import POLICIES
from model.data.coco import CocoDataset
from model.data.dataset import SHAPES_STYLES, ShapesDataset, shapes_dataset
from model.evaluate import Evaluation, evaluate
from model.maskrcnn import MaskRCNN
from model.training.loop import checkpoint_path, train_model
from model.weights.checkpoint import save_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACT = os.path.join(HERE, "artifacts", "shapes_r50.pt")
TRAIN_SEED, EVAL_SEED = 1, 2
EVAL_MAX_DIM = shapes_ood.LONGEST_SIDE  # 192: no OOD image is shrunk (training molds to 128)
DEFAULT_LR = {"SGD": 0.01, "Adam": 3e-4}
EPOCH_IMAGES = ShapesConfig.STEPS_PER_EPOCH * ShapesConfig.IMAGES_PER_GPU  # an epoch, whatever --batch-size


class TimeBudget:
    """Shortens a schedule to fit ``seconds`` of training: after each epoch, another one
    starts only if it and the epochs held in reserve after it (the low-rate ones) fit, at
    the pace of the slowest of the last three epochs (epochs slow down as a run goes on:
    from 1.25 to 1.08 steps/s on a 2-core EPYC)."""

    def __init__(self, seconds: float, clock=time.perf_counter):
        self.seconds, self.clock = seconds, clock
        self.start = self.last = clock()
        self.durations: list = []  # seconds of each epoch so far

    @property
    def pace(self) -> float:
        """Seconds an epoch is expected to take: the slowest of the last three (0 before any)."""
        return max(self.durations[-3:], default=0.0)

    def fits(self, reserve: int) -> bool:
        """Whether one more epoch and ``reserve`` after it fit (True before any epoch)."""
        return self.clock() - self.start + self.pace * (1 + reserve) <= self.seconds

    def stop_after(self, reserve: int):
        """A train_model ``stop_after`` hook: records the epoch, stops when the next won't fit."""
        def stop(run) -> bool:
            now = self.clock()
            self.durations.append(now - self.last)
            self.last = now
            return not self.fits(reserve)
        return stop

    def epochs_left(self) -> int:
        """How many more epochs fit at the pace so far (a large number before any epoch)."""
        pace = self.pace
        return int((self.seconds - (self.clock() - self.start)) // pace) if pace else 10 ** 6


def linear_rate(peak: float, done: int, left: int) -> float:
    """The rate of the next epoch of a linear decay from ``peak`` towards zero, ``done``
    epochs into it with ``left`` (the next included) still to run. Planned afresh before
    each epoch, it ends near zero however many epochs the budget turns out to allow:
    with a fixed ``done + left = n`` it is ``peak * (n - done) / n``."""
    return peak * left / (done + left)


def add_eval_max_dim(parser: argparse.ArgumentParser) -> None:
    """``--eval-max-dim``: the IMAGE_MAX_DIM the held-out sets are molded with, checked
    as Config checks it (a multiple of 64)."""
    def size(text: str) -> int:
        try:
            return dataclasses.replace(ShapesConfig(), IMAGE_MAX_DIM=int(text)).IMAGE_MAX_DIM
        except (ValueError, ConfigError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("--eval-max-dim", type=size, default=EVAL_MAX_DIM,
                        help="IMAGE_MAX_DIM while scoring (training stays at 128): the default 192 is the "
                             "out-of-distribution set's longest side, so none of its images is shrunk; 128 "
                             "shrinks its larger frames and their small objects with them (README)")


class HeldOutSets(NamedTuple):
    """The two held-out sets a shapes model is scored on."""

    same: ShapesDataset  # standard shapes drawn with EVAL_SEED
    ood: CocoDataset  # benchmarks.shapes_ood, prepared
    ood_json: str  # its instances.json


class HeldOut(NamedTuple):
    """A model's scores on HeldOutSets."""

    same: Evaluation
    ood: Evaluation
    ood_by_background: Dict[str, dict]  # shapes_ood.by_background


def held_out_sets(count: int, side: int, ood_dir: str) -> HeldOutSets:
    """``count`` standard shapes (side x side) and the out-of-distribution set, written
    once under ``ood_dir``."""
    ood_json = shapes_ood.write_set(ood_dir)
    ood = CocoDataset()
    ood.load_coco(ood_json, ood_dir)
    ood.prepare()
    return HeldOutSets(shapes_dataset(count, side, side, EVAL_SEED), ood, ood_json)


def scoring_config(config, max_dim: int):
    """``config`` as the held-out sets are scored with: DETECTION_MIN_CONFIDENCE 0 (the
    whole precision-recall curve), IMAGE_MAX_DIM ``max_dim``."""
    return dataclasses.replace(config, DETECTION_MIN_CONFIDENCE=0.0, IMAGE_MAX_DIM=max_dim)


def score_held_out(model, sets: HeldOutSets, count: int, max_dim: int) -> HeldOut:
    """COCO AP of ``model`` in float32 under ``scoring_config(model.config, max_dim)`` on
    ``sets``: all of ``same`` and the first ``count`` OOD images (IMAGE_MIN_DIM as
    trained). ``model.config`` is restored afterwards."""
    trained = model.config
    model.config = scoring_config(trained, max_dim)
    try:
        same = evaluate(model, sets.same)
        ood = evaluate(model, sets.ood, limit=count)
    finally:
        model.config = trained
    return HeldOut(same, ood, shapes_ood.by_background(sets.ood, ood.results, count))


def new_stage(run, args):
    """A new optimizer for each stage (README: "Restarting the optimizer") unless --carry-optimizer."""
    if run is not None and not args.carry_optimizer:
        run.optimizer_state = None
    return run


def step_schedule(train, easy_set, train_set, late_set, args, budget):
    """--schedule step: --easy-epochs on standard shapes, --style data at --lr up to
    --epochs, then --fine-epochs at a tenth, the base-rate epochs cut to fit ``budget``;
    the last --late-epochs at --lr and the fine ones on ``late_set`` (--late-style).
    Returns the run and each epoch's rate."""
    late, fine = args.late_epochs, args.fine_epochs
    # (data, augmentation, learning rate, last epoch (None: ``more`` after the stage
    # before), more, epochs the budget keeps in reserve after this stage's)
    stages = ((easy_set, "flip", args.lr, args.easy_epochs, 0, late + fine),
              (train_set, args.augment, args.lr, args.epochs - late, 0, late + fine),
              (late_set, args.augment, args.lr, None, late, fine),
              (late_set, args.augment, args.lr / 10, None, fine, 0))
    run, rates = None, []
    for data, augment, lr, last_epoch, more, reserve in stages:  # each stage trains up to its last epoch
        done = run.epoch if run else 0
        last_epoch = done + more if last_epoch is None else last_epoch
        if last_epoch > done and (budget is None or budget.fits(reserve)):
            run = train(data, augment, lr, last_epoch, new_stage(run, args), reserve)
            rates += [lr] * (run.epoch - done)
    return run, rates


def linear_schedule(train, easy_set, train_set, args, budget):
    """--schedule linear: --easy-epochs on standard shapes at --lr, then --style data one
    epoch at a time, the rate falling linearly from --peak-lr towards zero over the epochs
    that fit ``budget`` (re-planned before each; at most --epochs - --easy-epochs +
    --fine-epochs), the optimizer carried from epoch to epoch. Returns the run and each
    epoch's rate."""
    run, rates = None, []
    if args.easy_epochs:
        run = train(easy_set, "flip", args.lr, args.easy_epochs, None, 1)
        rates += [args.lr] * run.epoch
    planned = args.epochs - args.easy_epochs + args.fine_epochs
    for done in range(planned):
        left = min(planned - done, budget.epochs_left() if budget else planned)
        if left < 1:
            break
        lr = linear_rate(args.peak_lr or args.lr, done, left)
        run = train(train_set, args.augment, lr, len(rates) + 1, new_stage(run, args) if done == 0 else run, 0)
        rates.append(lr)
    return run, rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40,
                        help="epochs at the base learning rate (the budget cuts them to what fits: 30 here)")
    parser.add_argument("--fine-epochs", type=int, default=3, help="further epochs at a 10x lower rate")
    parser.add_argument("--budget-minutes", type=float, default=30,
                        help="training time the schedule is cut to fit: fewer epochs at the base rate, "
                             "the --fine-epochs kept in reserve (dropped too only when epochs slow down past "
                             "the pace measured); 0: train every epoch planned")
    parser.add_argument("--schedule", choices=("step", "linear"), default="step",
                        help="step: --epochs at --lr, then --fine-epochs at a tenth; linear: after the easy epochs "
                             "(at --lr) the rate starts at --peak-lr and falls linearly towards zero over the epochs "
                             "that fit the budget (at most --epochs - --easy-epochs + --fine-epochs), one optimizer "
                             "through them")
    parser.add_argument("--peak-lr", type=float, help="--schedule linear: the rate it starts from (default: --lr)")
    parser.add_argument("--carry-optimizer", action="store_true",
                        help="continue the optimizer state (Adam's moments) from stage to stage instead of "
                             "starting a new optimizer at each (as train_model continues a run by default)")
    parser.add_argument("--average-decay", type=float, default=0.0,
                        help="keep a moving average of the weights with this decay per step "
                             "(model.training.average; 0.999: about the last 1000 steps weigh), score it beside "
                             "the live weights and keep it as the --artifact; 0: none")
    parser.add_argument("--pyramid-size", type=int, default=128,
                        help="Config.TOP_DOWN_PYRAMID_SIZE: channels of the FPN, the RPN and the heads' convolutions "
                             "(Matterport's 256/1024 takes 1.3x as long a step, so fewer epochs fit the budget)")
    parser.add_argument("--fc-size", type=int, default=512,
                        help="Config.FPN_CLASSIF_FC_LAYERS_SIZE: width of the box head's two dense layers "
                             "(Matterport: 1024)")
    parser.add_argument("--mask-pool-size", type=int, default=ShapesConfig.MASK_POOL_SIZE,
                        help="Config.MASK_POOL_SIZE (MASK_SHAPE is twice it): the mask head's RoI grid "
                             "(default: Matterport's %(default)s, 28x28 masks). 7 (14x14 masks) is a quarter of "
                             "the mask head's work: more epochs fit the budget, but mask AP drops by ~0.1 (README)")
    parser.add_argument("--batch-size", type=int, default=ShapesConfig.IMAGES_PER_GPU,
                        help="Config.IMAGES_PER_GPU: images a step (default: ShapesConfig's, %(default)s). A step "
                             "of 8 takes 1.2x less time an image here but makes half the updates; scale --lr with "
                             "it (README)")
    parser.add_argument("--steps", type=int,
                        help=f"steps per epoch (default: {EPOCH_IMAGES} images an epoch, --batch-size at a time)")
    parser.add_argument("--set", action="append", default=[], type=setting_argument, metavar="NAME=VALUE",
                        help="a Config value on top of the recipe's, applied last (repeatable; VALUE as JSON, "
                             "else a string), e.g. --set TRAIN_ROIS_PER_IMAGE=50 --set ROI_POSITIVE_RATIO=0.2")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="Adam",
                        help="Config.OPTIMIZER: SGD with momentum (Matterport's) or Adam")
    parser.add_argument("--lr", type=float, help="base learning rate (default: 0.01 for SGD, 3e-4 for Adam)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: bf16 where the CPU has bf16 instructions, else fp32")
    parser.add_argument("--augment", choices=POLICIES, default="default",
                        help="training augmentation policy (model.data.augment)")
    parser.add_argument("--style", choices=tuple(SHAPES_STYLES), default="varied",
                        help="training shapes: Matterport's toy set, or a wider variety (SHAPES_STYLES)")
    parser.add_argument("--late-style", choices=tuple(SHAPES_STYLES), default="mosaic",
                        help="--schedule step: the last --late-epochs at --lr and the --fine-epochs draw this style "
                             "instead of --style (hard backgrounds once the shapes are learned)")
    parser.add_argument("--late-epochs", type=int, default=6,
                        help="base-rate epochs on --late-style (see there); 0: --style to the end (required with "
                             "--schedule linear)")
    parser.add_argument("--easy-epochs", type=int, default=3,
                        help="a curriculum: the first epochs on standard shapes with --augment flip, "
                             "then --style and --augment (the masks are learned sooner)")
    parser.add_argument("--keep-checkpoints", type=int, default=2,
                        help="epoch checkpoints kept in the run's log dir (each is ~540 MB with Adam)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the initial weights and what training draws (the data sets stay fixed)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--eval-images", type=int, default=200)
    add_eval_max_dim(parser)
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the pipeline")
    parser.add_argument("--log-dir", default=os.path.join(HERE, "artifacts", "logs"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_shapes"))
    parser.add_argument("--artifact", default=ARTIFACT, help="where the final checkpoint is copied")
    parser.add_argument("--ood-dir", default=shapes_ood.DEFAULT_DIR, help="the out-of-distribution set's folder")
    args = parser.parse_args(argv)
    if not 0 <= args.easy_epochs <= args.epochs:
        parser.error(f"--easy-epochs {args.easy_epochs} must lie in 0..--epochs ({args.epochs})")
    if args.keep_checkpoints < 1:
        parser.error("--keep-checkpoints must be at least 1 (the checkpoint to resume from)")
    if not 0 <= args.average_decay < 1:
        parser.error(f"--average-decay must lie in [0, 1) (0: no average), not {args.average_decay:g}")
    if args.peak_lr is not None and (args.schedule != "linear" or args.peak_lr <= 0):
        parser.error(f"--peak-lr {args.peak_lr:g}: a positive rate, with --schedule linear")
    if args.late_epochs < 0 or args.late_epochs and (
            args.schedule != "step" or args.easy_epochs + args.late_epochs > args.epochs):
        parser.error(f"--late-epochs {args.late_epochs}: at least 0; above 0 only with --schedule step, and "
                     f"--easy-epochs + --late-epochs at most --epochs ({args.epochs})")
    for flag, value in (("--batch-size", args.batch_size), ("--mask-pool-size", args.mask_pool_size)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, not {value}")
    args.steps = args.steps or max(1, EPOCH_IMAGES // args.batch_size)
    if args.quick:
        args.epochs, args.fine_epochs, args.steps, args.eval_images = 1, 1, 5, 10
        args.easy_epochs, args.late_epochs = min(args.easy_epochs, 1), 0
        args.output += "_quick"
    args.late_style = args.late_style if args.late_epochs else None  # the report names no style unused
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = args.precision if args.precision != "auto" else ("bf16" if has_bf16() else "fp32")
    args.lr = args.lr or DEFAULT_LR[args.optimizer]
    torch.manual_seed(args.seed)
    config = dataclasses.replace(ShapesConfig(), STEPS_PER_EPOCH=args.steps, IMAGES_PER_GPU=args.batch_size,
                                 TRAIN_BN=None, BATCH_RENORM=True,
                                 OPTIMIZER=args.optimizer, TOP_DOWN_PYRAMID_SIZE=args.pyramid_size,
                                 FPN_CLASSIF_FC_LAYERS_SIZE=args.fc_size)
    config = with_mask_pool_size(config, args.mask_pool_size)
    try:
        config = with_settings(config, args.set)
    except ConfigError as exc:
        parser.error(f"--set: {exc}")
    side = config.IMAGE_SHAPE[0]
    style = SHAPES_STYLES[args.style]
    train_set = shapes_dataset(args.train_images, side, side, TRAIN_SEED, style)
    val_set = shapes_dataset(50, side, side, TRAIN_SEED + 100, style)
    model = MaskRCNN(config)
    easy_set = (train_set if args.style == "standard" or not args.easy_epochs  # unused without easy epochs
                else shapes_dataset(args.train_images, side, side, TRAIN_SEED))
    late_set = (shapes_dataset(args.train_images, side, side, TRAIN_SEED, SHAPES_STYLES[args.late_style])
                if args.late_epochs else train_set)
    budget = TimeBudget(args.budget_minutes * 60) if args.budget_minutes else None
    start = time.perf_counter()

    def train(data, augment, lr, epochs, run, reserve):  # trains up to ``epochs``, keeping ``reserve`` in the budget
        return train_model(model, data, val_set, lr, epochs, layers="all", augmentation=augment,
                           log_dir=args.log_dir, class_names=train_set.class_names, precision=precision, run=run,
                           seed=args.seed, keep_checkpoints=args.keep_checkpoints,
                           stop_after=budget.stop_after(reserve) if budget else None,
                           average_decay=args.average_decay or None)

    if args.schedule == "step":
        run, rates = step_schedule(train, easy_set, train_set, late_set, args, budget)
    else:
        run, rates = linear_schedule(train, easy_set, train_set, args, budget)
    train_seconds = time.perf_counter() - start
    last = checkpoint_path(run.run_dir, config.NAME, run.epoch)

    started = time.perf_counter()
    sets = held_out_sets(args.eval_images, side, args.ood_dir)
    live = score_held_out(model, sets, args.eval_images, args.eval_max_dim)
    if run.average is not None:  # the average is what the report headlines and the artifact holds
        run.average.copy_to(model)
        result, ood_result, backgrounds = score_held_out(model, sets, args.eval_images, args.eval_max_dim)
    else:
        result, ood_result, backgrounds = live
    ood_json = sets.ood_json
    eval_seconds = time.perf_counter() - started
    if not args.quick:
        os.makedirs(os.path.dirname(os.path.abspath(args.artifact)), exist_ok=True)
        if run.average is None:
            shutil.copyfile(last, args.artifact)
        else:
            save_checkpoint(args.artifact, model, train_set.class_names,
                            source=f"benchmarks.train_shapes: moving average of the weights (decay "
                                   f"{args.average_decay:g}) after epoch {run.epoch} of {run.run_dir}")

    curve = [[h["epoch"], f"{h['loss']:.3f}", f"{h.get('val_loss', float('nan')):.3f}",
              f"{h['mrcnn_mask_loss']:.3f}", f"{h.get('val_mrcnn_mask_loss', float('nan')):.3f}"]
             for h in run.history]
    target_met = (result.mask["AP50"] >= 0.90 and ood_result.mask["AP50"] >= 0.85
                  and train_seconds <= 30 * 60)
    rows = [[f"{name} {kind}"] + [f"{v:.3f}" for v in getattr(r, kind).values()]
            for name, r in (("same generator", result), ("out of distribution", ood_result))
            for kind in ("box", "mask")]
    shortened = (f" (planned {args.epochs} + {args.fine_epochs}: --budget-minutes {args.budget_minutes:g} cut it)"
                 if len(rates) < args.epochs + args.fine_epochs else "")
    if args.schedule == "step":
        base = rates.count(args.lr)
        trained = {"base": base, "fine": len(rates) - base}
        schedule = f"{base} epochs at lr {args.lr:g} + {len(rates) - base} at lr {args.lr / 10:g}"
    else:
        trained = {"base": args.easy_epochs, "linear": len(rates) - args.easy_epochs}
        schedule = (f"{args.easy_epochs} epochs at lr {args.lr:g}, then {trained['linear']} with the rate falling "
                    f"linearly from {rates[args.easy_epochs]:.3g} to {rates[-1]:.3g} (--schedule linear)"
                    if trained["linear"] else f"{args.easy_epochs} epochs at lr {args.lr:g} (--schedule linear: no "
                                              "more fit the budget)")
    body = (f"From scratch, {args.optimizer}, {schedule}{shortened}, "
            f"batch renormalization, {precision}, {torch.get_num_threads()} threads, seed {args.seed}; "
            f"TOP_DOWN_PYRAMID_SIZE {args.pyramid_size}, FPN_CLASSIF_FC_LAYERS_SIZE {args.fc_size}, "
            f"MASK_POOL_SIZE {config.MASK_POOL_SIZE} ({config.MASK_SHAPE[0]}x{config.MASK_SHAPE[1]} masks); "
            + "".join(f"{name} {value} (--set); " for name, value in args.set)
            + f"{args.steps} steps of {args.batch_size} images each; {args.train_images} training images "
            f"(--style {args.style}, seed {TRAIN_SEED}), "
            f"--augment {args.augment}"
            + (f" after --easy-epochs {args.easy_epochs} on standard shapes with --augment flip"
               if args.easy_epochs else "")
            + (f", the last {args.late_epochs} epochs at lr {args.lr:g} and those at a tenth on --late-style "
               f"{args.late_style}" if args.late_epochs else "")
            + f". Evaluated (float32, IMAGE_MAX_DIM {args.eval_max_dim}) on {args.eval_images} held-out standard "
            f"shapes (seed {EVAL_SEED}) and the first {ood_result.images} out-of-distribution images ({ood_json})."
            + (f" The weights scored are the moving average of the live ones (decay {args.average_decay:g} per step, "
               f"{run.average.updates} steps); the live weights are scored below it." if run.average else "")
            + f"\n\nTime: training {train_seconds / 60:.1f} min, evaluation {eval_seconds / 60:.1f} min.\n\n"
            + markdown_table(["", "AP", "AP50", "AP75", "APs", "APm", "APl"], rows)
            + ("\n\nThe live weights (mask AP50), against their average: same generator "
               f"{live.same.mask['AP50']:.3f} ({result.mask['AP50']:.3f}), out of distribution "
               f"{live.ood.mask['AP50']:.3f} ({ood_result.mask['AP50']:.3f})." if run.average else "")
            + f"\n\nMatterport mAP@0.5 (masks): same generator {result.voc_map50:.3f}, out of distribution "
              f"{ood_result.voc_map50:.3f}.\n\nOut of distribution by background texture:\n\n"
            + shapes_ood.background_table(backgrounds) + "\n\n"
            + ("(--quick: a smoke run, not a target run.)\n\n" if args.quick else
               "Target mask AP50 >= 0.90 (same generator) and >= 0.85 (out of distribution) with "
               f"training within 30 min: {'met' if target_met else 'NOT met'}.\n\n")
            + "Loss per epoch (mean over the epoch's steps; validation on 50 other images, "
              "inference-mode BN):\n\n"
            + markdown_table(["epoch", "train loss", "val loss", "train mask loss", "val mask loss"], curve))
    publish(args.output, "Shapes from scratch on the CPU", body, {
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "precision": precision,
        "evaluation": result.summary(), "evaluation_ood": ood_result.summary(),
        "ood_by_background": backgrounds,
        "history": run.history, "checkpoint": last, "epochs_trained": trained,
        "rates": rates,
        "live_weights": ({"evaluation": live.same.summary(), "evaluation_ood": live.ood.summary(),
                          "ood_by_background": live.ood_by_background} if run.average else None),
        "target_met": target_met, "args": vars(args)},
        f"python -m model.evaluate --dataset coco --data {ood_json} --weights "
        f"{args.artifact if not args.quick else last} --set IMAGE_MAX_DIM={args.eval_max_dim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
