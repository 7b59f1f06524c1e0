"""Convert a Matterport Keras ``.h5`` weights file into a PyTorch checkpoint.

    python -m model.convert_h5 mask_rcnn_coco.h5 coco.pt
    python -m model.convert_h5 my_model.h5 my_model.pt --config my_project.config:MyConfig \\
        --class-names BG,cat,dog

NUM_CLASSES, the backbone (resnet50/101) and the head sizes are read from the weight
shapes. Without --config the other values are Matterport's defaults; give your
training config (a ``module:Class`` or a JSON file) so that image size, anchors and
thresholds match how the model was trained.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import List, Optional

from model.config import Config, ConfigError
from model.config_loading import load_config
from model.data.coco_classes import COCO_CLASS_NAMES
from model.weights.checkpoint import default_class_names, save_checkpoint
from model.weights.h5_weights import WeightsError, convert_weights, read_h5, summarize
from runtime.files import OutputPathError, check_output_path
from runtime.integrity import sha256_file


def config_for_weights(summary, config: Optional[Config]) -> Config:
    """The config to build: ``config`` (or the defaults) with the values the file
    fixes. An explicitly given config that disagrees with the file is an error."""
    from_file = {
        "NUM_CLASSES": summary.num_classes,
        "BACKBONE": summary.backbone,
        "FPN_CLASSIF_FC_LAYERS_SIZE": summary.fc_layers_size,
        "TOP_DOWN_PYRAMID_SIZE": summary.pyramid_size,
    }
    from_file = {k: v for k, v in from_file.items() if v is not None}
    if config is not None:
        conflicts = [f"{k}: config {getattr(config, k)!r}, file {v!r}"
                     for k, v in from_file.items() if getattr(config, k) != v]
        if conflicts:
            raise ConfigError("the config does not match the weights file: " + "; ".join(conflicts))
        return config
    return dataclasses.replace(Config(NAME="converted"), **from_file)


def class_names_for(num_classes: int, names: Optional[str]) -> List[str]:
    if names:
        parsed = [n.strip() for n in names.split(",")]
        if len(parsed) != num_classes:
            raise ConfigError(f"--class-names has {len(parsed)} names, the model has "
                              f"NUM_CLASSES={num_classes} (BG included)")
        return parsed
    return list(COCO_CLASS_NAMES) if num_classes == len(COCO_CLASS_NAMES) else default_class_names(num_classes)


def convert(h5_path: str, out_path: str, config: Optional[Config] = None,
            class_names: Optional[str] = None) -> Config:
    """Import ``h5_path`` (strictly: every model layer must be in the file) and write
    the checkpoint to ``out_path``. Returns the config used."""
    from model.maskrcnn import MaskRCNN

    check_output_path(out_path)
    weights = read_h5(h5_path)
    config = config_for_weights(summarize(weights), config)
    model = MaskRCNN(config)
    state, report = convert_weights(model, weights, h5_path, command="python -m model.convert_h5")
    model.load_state_dict(state, strict=False)
    names = class_names_for(config.NUM_CLASSES, class_names)
    save_checkpoint(out_path, model, names,
                    source=f"{h5_path} (sha256 {sha256_file(h5_path)}); {len(report.loaded)} layers")
    return config


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.convert_h5", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("h5", help="Keras weights file written by Matterport's Mask R-CNN")
    parser.add_argument("output", help="PyTorch checkpoint to write (.pt)")
    parser.add_argument("--config", help="module:ConfigClass or a JSON file of config values")
    parser.add_argument("--class-names", help="comma-separated names, BG first "
                        "(default: COCO names for 81 classes, else class_1, class_2, ...)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else None
        config = convert(args.h5, args.output, config, args.class_names)
    except (WeightsError, ConfigError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {config.BACKBONE}, NUM_CLASSES={config.NUM_CLASSES}, "
          f"input {config.IMAGE_SHAPE[0]}x{config.IMAGE_SHAPE[1]}")
    print(f"next: python -m model.detect --weights {args.output} IMAGE [IMAGE ...]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
