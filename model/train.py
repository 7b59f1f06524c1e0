"""Train Mask R-CNN (Matterport's training loop, in PyTorch).

    python -m model.train --dataset shapes --init none --batch-renorm --precision bf16 --layers all --epochs 20
    python -m model.train --dataset shapes --init none --batch-renorm --layers all --epochs 20 --augment default
    python -m model.train --dataset shapes --init none --batch-renorm --layers all --epochs 9 --optimizer Adam --lr 3e-4
    python -m model.train --dataset shapes --init none --epochs 1 --set TRAIN_ROIS_PER_IMAGE=64   # any Config value
    python -m model.train --dataset coco --data /data/coco --init imagenet --layers heads --epochs 40
    python -m model.train --dataset coco --data /data/coco --init last --epochs 60      # resume
    python -m model.train --dataset balloon.data:BalloonDataset --data balloon/ \\
        --config balloon.config:BalloonConfig --init coco --layers heads --epochs 30
    torchrun --nproc_per_node 4 -m model.train --dataset coco --data /data/coco ...    # DDP

--init: none (random), imagenet (the Keras ResNet50 ImageNet .h5 Matterport uses),
coco (mask_rcnn_coco.h5; heads are re-initialised when NUM_CLASSES differs), last
(resume the newest run in --log-dir exactly), or a path to a .h5 or .pt file.
A checkpoint is written after every epoch; Ctrl-C loses at most the current epoch and
says which checkpoint holds the run and how to resume it. --seed fixes everything a run
draws (the initial weights, the data order and augmentation, the sampled RoIs): the same
command gives the same weights, bit for bit, on the same machine and library versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
import time
from typing import List

import torch

from model.config import OPTIMIZERS, ConfigError
from model.config_loading import load_config, setting_argument, with_settings
from model.data.coco import DatasetError
from model.weights.checkpoint import load_checkpoint
from model.weights.h5_weights import HEAD_LAYERS, WeightsError, load_h5_weights, read_h5, summarize

IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = ("https://github.com/fchollet/deep-learning-models/releases/download/v0.2/" + IMAGENET_FILE)
COCO_FILE = "mask_rcnn_coco.h5"
COCO_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


def _find_weights(explicit, file_name, url, what) -> str:
    candidates = [explicit] if explicit else [file_name, os.path.expanduser(f"~/.keras/models/{file_name}")]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise WeightsError(f"{what} weights not found (looked for {', '.join(candidates)}). This machine cannot "
                       f"download; fetch {url} elsewhere and pass its path")


def initialise(model, init: str, args, log_dir: str):
    """Apply --init to ``model``; returns a TrainingRun to resume, or None."""
    from model.training.loop import find_last, resume

    config = model.config
    if init == "none":
        return None
    if init == "last":
        return resume(model, find_last(log_dir, config.NAME or "mrcnn"))
    if init == "imagenet":
        path = _find_weights(args.imagenet_weights, IMAGENET_FILE, IMAGENET_URL, "ImageNet ResNet50")
        report = load_h5_weights(model, path, strict=False)
        if not report.loaded:
            raise WeightsError(f"{path}: no layer matched the model by name; is it the Keras ResNet50 file?")
        logging.info("loaded %d ImageNet layers from %s", len(report.loaded), path)
        return None
    path = _find_weights(args.coco_weights, COCO_FILE, COCO_URL, "COCO") if init == "coco" else init
    if path.endswith(".h5"):
        same_heads = summarize(read_h5(path)).num_classes == config.NUM_CLASSES
        load_h5_weights(model, path, exclude=() if same_heads else HEAD_LAYERS)
        return None
    checkpoint = load_checkpoint(path)
    state = checkpoint.state_dict
    if checkpoint.config.NUM_CLASSES != config.NUM_CLASSES:
        head_modules = {id(m) for name, m in model.keras_layers().items() if name in HEAD_LAYERS}
        heads = tuple(f"{name}." for name, m in model.named_modules() if id(m) in head_modules)
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("box_head.", "mask_head.")) for k in missing):
        raise WeightsError(f"{path}: does not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return None


def interrupted_message(argv: List[str], log_dir: str, name: str, started: float) -> str:
    """What Ctrl-C left behind: the newest checkpoint of this run and the command that resumes it."""
    from model.training.loop import find_last

    try:
        last = find_last(log_dir, name)
    except FileNotFoundError:
        last = None
    if last is None:
        return "interrupted before this run finished an epoch: it wrote no checkpoint"
    kept, skip = [], False
    for arg in argv:  # the same command with --init last
        if skip or arg.startswith("--init="):
            skip = False
            continue
        skip = arg == "--init"
        if not skip:
            kept.append(arg)
    resume = " ".join(shlex.quote(a) for a in kept + ["--init", "last"])
    saved = (f"the last completed epoch is saved in {last}" if os.path.getmtime(last) >= started else
             f"this run finished no epoch; the newest checkpoint, from before it, is {last}")
    return f"interrupted: {saved} (the epoch in progress is lost)\nresume: python -m model.train {resume}"


def main(argv=None) -> int:
    from model.data.datasets_cli import add_dataset_arguments, open_dataset

    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--config", help="module:ConfigClass or JSON (default: ShapesConfig / CocoConfig)")
    parser.add_argument("--init", default="none", help="none | imagenet | coco | last | PATH (.h5 or .pt)")
    parser.add_argument("--imagenet-weights", help=f"path of {IMAGENET_FILE}")
    parser.add_argument("--coco-weights", help=f"path of {COCO_FILE}")
    parser.add_argument("--layers", default="heads", help="heads | 3+ | 4+ | 5+ | all | a regex of layer names")
    parser.add_argument("--epochs", type=int, required=True, help="train until this many epochs in total")
    parser.add_argument("--lr", type=float, help="learning rate (default: the config's LEARNING_RATE)")
    parser.add_argument("--steps-per-epoch", type=int, help="override STEPS_PER_EPOCH")
    parser.add_argument("--log-dir", default="logs", help="runs and checkpoints go under here")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and everything training draws")
    parser.add_argument("--augment", choices=("none", "flip", "default"), default="flip",
                        help="augmentation policy (model.data.augment): flip = Matterport's random horizontal "
                             "flip; default = flip, scale/aspect jitter with crop/pad, colour jitter, noise, blur")
    parser.add_argument("--no-flip", action="store_true", help="same as --augment none")
    parser.add_argument("--clip-per-tensor", action="store_true",
                        help="clip each gradient tensor to GRADIENT_CLIP_NORM (default: Matterport's global norm); "
                             "recommended from scratch, where conv1's gradient dwarfs the others")
    parser.add_argument("--batch-renorm", action="store_true",
                        help="train BN with Batch Renormalization (TRAIN_BN None, BATCH_RENORM True): "
                             "recommended with --init none, where there are no statistics to freeze")
    parser.add_argument("--optimizer", choices=OPTIMIZERS,
                        help="override the config's OPTIMIZER (default SGD, Matterport's); Adam learns much sooner "
                             "from scratch (use a ~30x lower --lr, e.g. 3e-4 for shapes)")
    parser.add_argument("--set", action="append", default=[], type=setting_argument, metavar="NAME=VALUE",
                        help="a Config value on top of --config and the options above (repeatable; VALUE as JSON, "
                             "else a string), e.g. --set TRAIN_ROIS_PER_IMAGE=64 --set DETECTION_MIN_CONFIDENCE=0.9")
    parser.add_argument("--keep-checkpoints", type=int, metavar="N",
                        help="keep only the newest N epoch checkpoints of the run (default: all, as Matterport)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: bfloat16 autocast (1.5x faster per step on a CPU with AMX; needs AVX512-BF16/AMX "
                             "or a bf16-capable GPU to pay off); losses, proposals and targets stay float32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started, config = time.time(), None
    try:
        from model.configs import CocoConfig, ShapesConfig
        from model.maskrcnn import MaskRCNN
        from model.training.loop import train_model

        config = load_config(args.config) if args.config else (CocoConfig() if args.dataset == "coco"
                                                               else ShapesConfig())
        if args.steps_per_epoch:
            config = dataclasses.replace(config, STEPS_PER_EPOCH=args.steps_per_epoch)
        if args.optimizer:
            config = dataclasses.replace(config, OPTIMIZER=args.optimizer)
        if args.batch_renorm:
            config = dataclasses.replace(config, TRAIN_BN=None, BATCH_RENORM=True)
        config = with_settings(config, args.set)
        train_set = open_dataset(args, "train", config)
        val_set = open_dataset(args, "val", config)
        torch.manual_seed(args.seed)  # the initial weights (--init none, and heads that are not loaded)
        model = MaskRCNN(config)
        run = initialise(model, args.init, args, args.log_dir)
        run = train_model(model, train_set, val_set, args.lr or config.LEARNING_RATE, args.epochs,
                          layers=args.layers, augmentation="none" if args.no_flip else args.augment,
                          log_dir=args.log_dir, run=run,
                          seed=args.seed, workers=args.workers, class_names=train_set.class_names,
                          clip_per_tensor=args.clip_per_tensor, precision=args.precision,
                          keep_checkpoints=args.keep_checkpoints,
                          calibrate_bn_steps=20 if args.init == "none" and config.TRAIN_BN is False else 0)
    except (WeightsError, ConfigError, DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(sys.argv[1:] if argv is None else list(argv), args.log_dir,
                                  getattr(config, "NAME", None) or "mrcnn", started), file=sys.stderr)
        return 130
    from model.training.loop import checkpoint_path

    last = checkpoint_path(run.run_dir, config.NAME or "mrcnn", run.epoch)
    print(f"trained to epoch {run.epoch}; checkpoint {last}")
    if run.history:
        print("last epoch: " + ", ".join(f"{k} {v:.3f}" for k, v in run.history[-1].items() if k != "epoch"))
    data = f" --data {args.data}" if args.data else ""
    print(f"next: python -m model.evaluate --dataset {args.dataset}{data} --weights {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
