"""Opening datasets from the command line (shared by model.train and model.evaluate).

--dataset shapes            synthetic shapes, generated (train seed 1, val seed 2);
                            --shapes-style wide|varied|mosaic|periodic for a wider variety (SHAPES_STYLES)
--dataset coco --data DIR   Matterport's layout: DIR/annotations/instances_<subset><year>.json
                            and DIR/<subset><year>/ images
--dataset coco --data F.json [--images DIR]   any COCO-format instances file
--dataset pkg.mod:MyDataset --data PATH       your Dataset subclass; it must have a method
                            ``load(data_path, subset)`` (subset "train" or "val")
"""

from __future__ import annotations

import argparse
import importlib
import os

from model.data.coco import CocoDataset, DatasetError
from model.data.dataset import SHAPES_STYLES, Dataset, shapes_dataset

SHAPES_SEEDS = {"train": 1, "val": 2}


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="shapes", help="shapes | coco | package.module:DatasetClass")
    parser.add_argument("--data", help="dataset path (COCO root directory or instances JSON, or your loader's path)")
    parser.add_argument("--images", help="image folder for a COCO JSON given with --data (default: beside it)")
    parser.add_argument("--val-data", help="validation JSON for --data F.json (default: --data)")
    parser.add_argument("--year", default="2017", help="COCO year in Matterport's layout (default 2017)")
    parser.add_argument("--shapes-count", type=int, default=0,
                        help="images in the generated shapes set (default: 500 train, 100 val)")
    parser.add_argument("--shapes-style", choices=tuple(SHAPES_STYLES), default="standard",
                        help="standard: Matterport's toy set; wide: non-square frames, gradient and noisy "
                             "backgrounds, 1-6 smaller, more overlapping shapes; varied: wide plus turned "
                             "shapes and cluttered backgrounds; mosaic: varied plus hard-edged cell backgrounds; "
                             "periodic: varied plus stripe and crossed-grating backgrounds "
                             "(model.data.dataset.SHAPES_STYLES)")


def open_dataset(args, subset: str, model_config) -> Dataset:
    """The prepared dataset for ``subset`` ("train" or "val"); DatasetError when the
    arguments point at nothing usable."""
    if args.data and not os.path.exists(args.data):
        raise DatasetError(f"--data {args.data} does not exist")
    if args.dataset == "shapes":
        count = args.shapes_count or (500 if subset == "train" else 100)
        side = model_config.IMAGE_SHAPE[0]
        style = SHAPES_STYLES[args.shapes_style]
        dataset = shapes_dataset(count, side, side, seed=SHAPES_SEEDS[subset], style=style)  # prepared
    elif args.dataset == "coco":
        dataset = CocoDataset()
        json_path, image_dir = _coco_paths(args, subset)
        dataset.load_coco(json_path, image_dir)
        dataset.prepare()
    else:
        dataset = _custom_dataset(args.dataset)
        if not args.data:
            raise DatasetError(f"--dataset {args.dataset} needs --data")
        dataset.load(args.data, subset)
        dataset.prepare()
    if dataset.num_images == 0:
        raise DatasetError(f"the {subset} set of --dataset {args.dataset} has no usable images")
    if dataset.num_classes != model_config.NUM_CLASSES:
        raise DatasetError(f"the dataset has {dataset.num_classes} classes (BG included), the model "
                           f"NUM_CLASSES={model_config.NUM_CLASSES}")
    return dataset


def _coco_paths(args, subset: str):
    if not args.data:
        raise DatasetError("--dataset coco needs --data (a COCO root directory or an instances JSON)")
    if os.path.isfile(args.data):
        json_path = args.val_data if subset == "val" and args.val_data else args.data
        return json_path, args.images or os.path.dirname(os.path.abspath(json_path))
    name = f"{subset}{args.year}"
    json_path = os.path.join(args.data, "annotations", f"instances_{name}.json")
    if not os.path.isfile(json_path):
        raise DatasetError(f"{json_path} not found (expected Matterport's COCO layout under --data)")
    return json_path, os.path.join(args.data, name)


def _custom_dataset(spec: str) -> Dataset:
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise DatasetError(f"--dataset {spec}: cannot import it ({exc}); use shapes, coco or module:Class") from None
    if not (isinstance(cls, type) and issubclass(cls, Dataset) and hasattr(cls, "load")):
        raise DatasetError(f"--dataset {spec} must be a model.Dataset subclass with load(data_path, subset)")
    return cls()
