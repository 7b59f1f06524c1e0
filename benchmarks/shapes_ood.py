"""An out-of-distribution shapes set, written once as PNG files and a COCO instances JSON.

    python -m benchmarks.shapes_ood                         # 200 images -> benchmarks/artifacts/shapes_ood/
    python -m benchmarks.shapes_ood --count 50 --out /tmp/ood
    python -m benchmarks.shapes_ood --without texture --out /tmp/ood_plain   # one factor drawn as standard
    python -m model.evaluate --dataset coco --data benchmarks/artifacts/shapes_ood/instances.json \\
        --weights benchmarks/artifacts/shapes_r50.pt --set IMAGE_MAX_DIM=192   # score a shapes model on it

The same three classes as ShapesDataset (square, circle, triangle; category ids 1-3),
drawn by another routine so that a model which learned one generator's look fails here:
- non-square frames (aspect ratio up to 1.8, long side 128-192 pixels);
- textured backgrounds (stripes, checkerboard, blotches, gradients) plus pixel noise;
- squares and triangles tilted by up to 15 degrees, anti-aliased edges (drawn 4x larger,
  then averaged);
- smaller objects (half-size side/20 to side/5) and more of them (2-7), boxes
  overlapping up to IoU 0.6; later shapes occlude earlier ones.
Masks are the pixels at least half covered by the visible part of a shape; a shape
less than a third visible (or under 12 pixels) stays drawn but is marked ``iscrowd``,
so COCO AP neither demands nor penalises a detection of it.
Deterministic for --seed: the same command writes the same files. ``--without F``
draws factor F (FACTORS) as the standard shapes do and keeps the rest: which factor
costs a model how much is ``python -m benchmarks.ood_factors``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from typing import Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.common import markdown_table
from model.boxes import box_iou
from model.data.coco import mask_to_bbox, rle_encode
from model.data.dataset import SHAPE_NAMES, linear_ramp
from model.evaluate import coco_scores
from runtime.files import write_text_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "artifacts", "shapes_ood")
SUPERSAMPLE = 4
VERSION = 2  # bump when the drawing or the JSON changes: the folder is regenerated (2: "background")
# what makes the set out of distribution; render(without=...) draws each as the standard set does:
# square 128x128 frames, plain backgrounds, half-sizes side/16-side/4, 2-4 shapes at box IoU <= 0.3,
# upright shapes, no pixel noise, hard edges
FACTORS = ("frame", "texture", "small", "crowd", "tilt", "noise", "antialias")
BACKGROUNDS = ("stripes", "checkerboard", "blotches", "gradient")  # each image's, in the JSON's "background"
LONGEST_SIDE = 192  # of any frame: molded with IMAGE_MAX_DIM 192, no image of the set is shrunk


class OodImage(NamedTuple):
    """One drawn image of the set."""

    image: np.ndarray  # RGB uint8 [h,w,3]
    masks: np.ndarray  # visible masks bool [h,w,N]
    class_ids: np.ndarray  # int32 [N]: 1 square, 2 circle, 3 triangle
    hidden: np.ndarray  # bool [N]: mostly occluded (iscrowd in the JSON)
    background: str  # one of BACKGROUNDS, or "plain" without the texture factor


def render(rng: np.random.Generator, without: FrozenSet[str] = frozenset()) -> OodImage:
    """One image; ``without``: FACTORS drawn as the standard shapes are (an ablation of the set)."""
    long_side = int(rng.integers(128, LONGEST_SIDE + 1))
    aspect = math.exp(rng.uniform(0, math.log(1.8)))
    short_side = max(48, int(round(long_side / aspect)))
    height, width = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    if "frame" in without:
        height = width = 128
    pixels, texture = background(rng, height, width)
    if "texture" in without:
        pixels[:] = pixels[0, 0]
        texture = "plain"
    background_mean = pixels.reshape(-1, 3).mean(axis=0)  # [3]
    min_side = min(height, width)
    low, high = (min_side / 16, min_side / 4) if "small" in without else (min_side / 20, min_side / 5)
    most, max_iou = (4, 0.3) if "crowd" in without else (7, 0.6)
    specs, boxes = [], []
    for _ in range(int(rng.integers(2, most + 1))):
        size = rng.uniform(low, high)
        cy, cx = rng.uniform(size, height - size), rng.uniform(size, width - size)
        box = np.array([cy - size, cx - size, cy + size, cx + size])
        if boxes and box_iou(torch.from_numpy(box[None]), torch.from_numpy(np.array(boxes))).max() > max_iou:
            continue
        boxes.append(box)
        tilt = math.radians(rng.uniform(-15, 15))
        specs.append((int(rng.integers(0, 3)), cy, cx, size, 0.0 if "tilt" in without else tilt,
                      _color(rng, background_mean)))
    supersample = 1 if "antialias" in without else SUPERSAMPLE
    coverage = [_coverage(kind, cy, cx, size, angle, height, width, supersample)
                for kind, cy, cx, size, angle, _ in specs]
    for (*_, color), alpha in zip(specs, coverage):  # anti-aliased compositing, in order
        pixels = pixels * (1 - alpha[:, :, None]) + np.asarray(color, np.float32) * alpha[:, :, None]
    if "noise" not in without:
        pixels += rng.uniform(3, 15) * rng.standard_normal(pixels.shape).astype(np.float32)
    image = np.clip(np.around(pixels), 0, 255).astype(np.uint8)
    masks, hidden = _visible_masks(coverage)
    class_ids = np.array([kind + 1 for kind, *_ in specs], np.int32)
    return OodImage(image, masks, class_ids, hidden, texture)


def background(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, str]:
    """float32 [h,w,3] texture of two colours and its name (BACKGROUNDS)."""
    a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # stripes at an angle
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        t = (np.sin((y * math.sin(angle) + x * math.cos(angle)) * 2 * math.pi / period) > 0).astype(np.float32)
    elif kind == 1:  # checkerboard
        period = rng.uniform(8, 28)
        t = ((np.floor(y / period) + np.floor(x / period)) % 2).astype(np.float32)
    elif kind == 2:  # blotches: a coarse random grid, smoothly upsampled
        grid = rng.random((5, 5)).astype(np.float32)
        t = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), np.float32).clip(0, 1)
    else:  # linear gradient
        t = linear_ramp(height, width, rng.uniform(0, 2 * math.pi))
    t = t * rng.uniform(0.3, 1.0)  # texture contrast
    return a * (1 - t[:, :, None]) + b * t[:, :, None], BACKGROUNDS[kind]


def _color(rng: np.random.Generator, mean: np.ndarray) -> Tuple[int, int, int]:
    """A random colour at least 60 (Euclidean, 0-255) from the background's ``mean`` [3]."""
    for _ in range(20):
        color = rng.integers(0, 256, 3)
        if np.linalg.norm(color - mean) >= 60:
            break
    return tuple(int(v) for v in color)


def _coverage(kind: int, cy: float, cx: float, size: float, angle: float, height: int, width: int,
              s: int = SUPERSAMPLE) -> np.ndarray:
    """float32 [h,w] fraction of each pixel covered by the shape, drawn ``s`` x larger
    (s = 1: hard edges)."""
    canvas = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(canvas)
    if SHAPE_NAMES[kind] == "circle":
        draw.ellipse([(cx - size) * s, (cy - size) * s, (cx + size) * s, (cy + size) * s], fill=255)
    else:
        corners = 4 if SHAPE_NAMES[kind] == "square" else 3
        radius = size * (math.sqrt(2) if corners == 4 else 1.0)  # squares: half-side = size
        start = math.pi / 4 if corners == 4 else -math.pi / 2  # tilt 0: axis-aligned square, apex-up triangle
        points = [((cx + radius * math.cos(start + angle + 2 * math.pi * k / corners)) * s,
                   (cy + radius * math.sin(start + angle + 2 * math.pi * k / corners)) * s) for k in range(corners)]
        draw.polygon(points, fill=255)
    big = np.asarray(canvas, np.float32) / 255  # [h*s,w*s]
    return big.reshape(height, s, width, s).mean(axis=(1, 3))  # [h,w]


def _visible_masks(coverage: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """bool [h,w,N] visible masks (later shapes on top) and bool [N] mostly hidden."""
    height, width = coverage[0].shape
    masks = np.zeros((height, width, len(coverage)), bool)
    hidden = np.zeros(len(coverage), bool)
    free = np.ones((height, width), bool)
    for i in range(len(coverage) - 1, -1, -1):
        full = coverage[i] >= 0.5
        masks[:, :, i] = full & free
        free &= ~full
        visible = masks[:, :, i].sum()
        hidden[i] = visible < 12 or visible < full.sum() / 3
    return masks, hidden


def write_set(folder: str, count: int = 200, seed: int = 7, without: Iterable[str] = ()) -> str:
    """Write ``count`` images and ``instances.json`` under ``folder`` (kept when a set of
    the same version, count, seed and ``without`` is already there); returns the JSON path."""
    without = frozenset(without)
    unknown = without - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factors {sorted(unknown)}; choose from {', '.join(FACTORS)}")
    json_path = os.path.join(folder, "instances.json")
    stamp = {"generator": "benchmarks.shapes_ood", "version": VERSION, "count": count, "seed": seed}
    if without:
        stamp["without"] = sorted(without)
    if os.path.isfile(json_path):
        with open(json_path) as f:
            if json.load(f).get("info") == stamp:
                return json_path
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for image_id in range(count):
        image, masks, class_ids, hidden, texture = render(np.random.default_rng([seed, image_id]), without)
        name = f"{image_id:04d}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        images.append({"id": image_id, "file_name": name, "height": image.shape[0], "width": image.shape[1],
                       "background": texture})
        for i in np.nonzero(masks.any(axis=(0, 1)))[0]:
            mask = masks[:, :, i]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(class_ids[i]), "segmentation": rle_encode(mask),
                                "area": float(mask.sum()), "bbox": mask_to_bbox(mask), "iscrowd": int(hidden[i])})
    categories = [{"id": i, "name": name} for i, name in enumerate(SHAPE_NAMES, start=1)]
    write_text_atomic(json_path, json.dumps({"info": stamp, "images": images, "annotations": annotations,
                                             "categories": categories}))
    return json_path


def by_background(dataset, results: List[dict], limit: Optional[int] = None) -> Dict[str, dict]:
    """COCO mask AP of ``results`` (model.evaluate's, over the first ``limit`` images of
    ``dataset``, a prepared CocoDataset of a set written here) on the images of each
    background texture: {texture: {"images": n, "mask": stats, "counts": at score >=
    0.5}} (model.evaluate.coco_scores, one evaluation each), textures sorted."""
    groups = collections.defaultdict(list)  # background -> source image ids
    for info in dataset.image_info[:limit]:
        groups[dataset.coco.imgs[info["id"]]["background"]].append(info["id"])
    categories = [c["id"] for c in dataset.class_info[1:]]
    scores = {texture: coco_scores(dataset.coco, results, "segm", ids, categories)
              for texture, ids in sorted(groups.items())}
    return {texture: {"images": len(groups[texture]), "mask": stats, "counts": counts}
            for texture, (stats, counts) in scores.items()}


def background_table(backgrounds: Dict[str, dict]) -> str:
    """by_background's scores as a Markdown table: AP and what it is made of at score 0.5."""
    rows = [[name, b["images"], f"{b['mask']['AP50']:.3f}", f"{b['mask']['AP']:.3f}",
             f"{b['counts']['found']} of {b['counts']['instances']}",
             f"{b['counts']['false']} ({b['counts']['false'] / max(b['images'], 1):.1f})"]
            for name, b in backgrounds.items()]
    return markdown_table(["background", "images", "mask AP50", "mask AP", "shapes found (score >= 0.5)",
                           "false detections (per image)"], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shapes_ood", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_DIR, help="folder for the PNGs and instances.json")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--without", action="append", choices=FACTORS, default=[],
                        help="draw this factor as the standard set does (repeatable)")
    args = parser.parse_args(argv)
    json_path = write_set(args.out, args.count, args.seed, args.without)
    print(f"wrote {args.count} images and {json_path}")
    print(f"next: python -m model.evaluate --dataset coco --data {json_path} --weights WEIGHTS.pt "
          f"--set IMAGE_MAX_DIM={LONGEST_SIDE}   # the frames' longest side: none shrunk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
