"""Detect instances in image files with an exported model, torch-free.

    python -m runtime.detect --model shapes.onnx photo.png
    python -m runtime.detect --model shapes.onnx images/ --out overlays/ --json results.json
    python -m runtime.detect --model model.engine val2017/ --coco-json instances_val2017.json --json results.json
    python -m runtime.detect --model shapes_trt.onnx --providers cpu --score-threshold 0.7 a.png b.jpg

--model takes an .onnx (ONNX Runtime) or an .engine/.plan (TensorRT, with its .json).
Folders are read for image files (not recursively). --out writes each image with its
detections drawn (masks, boxes, class names, scores); --json writes COCO results (bbox,
score, category, RLE segmentation); with --coco-json the image and category ids are that
file's, so pycocotools can score the results against it. An image that cannot be read
is reported and skipped; the others are still run and written, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Tuple

import numpy as np

from runtime.coco_results import CocoIds, coco_results
from runtime.detector import open_model
from runtime.files import atomic_path, check_output_path, write_text_atomic
from runtime.image import ImageError, load_image
from runtime.model_info import ModelFileError
from runtime.progress import Progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def collect_images(paths: List[str]) -> List[str]:
    """Files as given, folders expanded to their image files (sorted); missing paths raise."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES))
            if not names:
                raise ImageError(f"{path}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            found += [os.path.join(path, n) for n in names]
        elif os.path.exists(path):
            found.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return found


def write_overlay(path: str, image: np.ndarray) -> None:
    """RGB uint8 image -> PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def overlay_path(out_dir: str, image_path: str, taken: set) -> str:
    stem = os.path.splitext(os.path.basename(image_path))[0]
    name, n = stem, 1
    while name in taken:  # the same name from two folders
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return os.path.join(out_dir, name + ".png")


def run(args) -> Tuple[int, int, List[dict]]:
    """(images done, images failed, COCO results)."""
    detector = open_model(args.model, providers=args.providers, threads=args.threads)
    ids = CocoIds.from_annotations(args.coco_json) if args.coco_json else CocoIds()
    paths = collect_images(args.images)
    names = detector.info.class_names
    print(f"{args.model}: {detector.backend}, {len(names) - 1} classes, input {detector.info.input_size}; "
          f"{len(paths)} images", file=sys.stderr)
    progress = Progress(len(paths), "detect") if len(paths) > 1 else None
    results, failed, taken = [], 0, set()
    for index, path in enumerate(paths):
        try:
            image = load_image(path)
            image_id = ids.image_id(path, index)
        except (ImageError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        detections = detector.detect([image], score_threshold=args.score_threshold,
                                     mask_threshold=args.mask_threshold, masks="lazy")[0]
        counts = np.bincount(detections.class_ids, minlength=len(names))
        found = ", ".join(f"{counts[c]} {names[c]}" for c in np.flatnonzero(counts)) or "nothing"
        print(f"{path}: {found}")
        results += coco_results(detections, image_id, names, ids, file_name=os.path.basename(path))
        if args.out:
            from runtime.draw import draw_detections

            write_overlay(overlay_path(args.out, path, taken), draw_detections(image, detections, names))
        if progress:
            progress.update()
    if progress:
        progress.close()
    return len(paths) - failed, failed, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files and folders of images")
    parser.add_argument("--model", required=True, help="exported model: .onnx, or .engine/.plan with its .json")
    parser.add_argument("--out", help="folder for the images with their detections drawn (PNG)")
    parser.add_argument("--json", help="write COCO results (bbox, score, category, RLE mask) here")
    parser.add_argument("--coco-json", help="COCO annotation file: take image and category ids from it")
    parser.add_argument("--score-threshold", type=float, help="keep detections scoring at least this")
    parser.add_argument("--mask-threshold", type=float, default=0.5, help="mask probability that counts as inside")
    parser.add_argument("--providers", default="auto", help="ONNX Runtime: auto, cpu, cuda or tensorrt")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    args = parser.parse_args(argv)
    try:
        if args.out:
            os.makedirs(args.out, exist_ok=True)
        if args.json:
            check_output_path(args.json, "--json")
        done, failed, results = run(args)
    except (ModelFileError, ImageError, ValueError, ImportError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_text_atomic(args.json, json.dumps(results))
        print(f"wrote {args.json} ({len(results)} detections in {done} images)")
    if args.out:
        print(f"wrote {done} overlays to {args.out}/")
    if failed:
        print(f"{failed} of {done + failed} images could not be read (see the errors above)", file=sys.stderr)
        return 1
    print(f"next: python -m runtime.video --model {args.model} --source VIDEO.mp4 --output annotated.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
