"""Run the PyTorch model on image files and print (or save) what it finds.

    python -m model.detect --weights coco.pt street.jpg
    python -m model.detect --weights shapes.pt --min-confidence 0.5 --json out.json *.png

--weights takes a checkpoint (.pt, from model.convert_h5 or model.train) or a Keras
.h5 file (converted on the fly; give --config for its non-default values).
An image that cannot be read is reported and skipped; the others are still run and
written, and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import List, Optional

from model.config import ConfigError
from model.weights.h5_weights import WeightsError
from runtime.files import OutputPathError, check_output_path, write_text_atomic
from runtime.image import ImageError, load_image


def load_any(weights: str, config_spec: Optional[str]):
    """(model, class_names) from a .pt checkpoint or a Keras .h5 file."""
    from model.config_loading import load_config
    from model.convert_h5 import class_names_for, config_for_weights
    from model.maskrcnn import MaskRCNN
    from model.weights.checkpoint import load_model
    from model.weights.h5_weights import load_h5_weights, read_h5, summarize

    config = load_config(config_spec) if config_spec else None
    if weights.endswith(".h5"):
        config = config_for_weights(summarize(read_h5(weights)), config)
        model = MaskRCNN(config)
        load_h5_weights(model, weights)
        return model.eval(), class_names_for(config.NUM_CLASSES, None)
    model, checkpoint = load_model(weights, config)
    return model, checkpoint.class_names


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--weights", required=True, help="checkpoint .pt or Keras .h5")
    parser.add_argument("--config", help="module:ConfigClass or JSON (needed for .h5 files "
                        "trained with non-default settings)")
    parser.add_argument("--min-confidence", type=float,
                        help="override DETECTION_MIN_CONFIDENCE")
    parser.add_argument("--json", help="also write the detections (boxes, classes, scores) here")
    args = parser.parse_args(argv)
    try:
        if args.json:
            check_output_path(args.json, "--json")
        model, class_names = load_any(args.weights, args.config)
        if args.min_confidence is not None:
            model.config = dataclasses.replace(model.config,
                                               DETECTION_MIN_CONFIDENCE=args.min_confidence)
    except (WeightsError, ConfigError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report, failed = [], []
    for path in args.images:
        try:
            image = load_image(path)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(path)
            continue
        report.append({"image": path, "instances": detect_one(model, image, class_names, path)})
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=1))
        print(f"wrote {args.json} ({len(report)} images)")
    if failed:
        print(f"{len(failed)} of {len(args.images)} images could not be read: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def detect_one(model, image, class_names: List[str], path: str) -> List[dict]:
    """Detect in one RGB uint8 image, print the instances and return them as JSON rows."""
    result = model.detect([image])[0]
    print(f"{path}: {len(result)} instances")
    rows = []
    for box, class_id, score in zip(result.rois, result.class_ids, result.scores):
        name = class_names[class_id]
        print(f"  {name:20} {score:.3f}  box (y1,x1,y2,x2) {box.tolist()}")
        rows.append({"class_id": int(class_id), "class_name": name, "score": float(score),
                     "box_yxyx": box.tolist()})
    return rows


if __name__ == "__main__":
    sys.exit(main())
