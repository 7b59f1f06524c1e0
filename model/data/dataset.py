"""Datasets with Matterport's API: ``Dataset`` and the synthetic ``ShapesDataset``.

Shapes: N instances, h, w image size. Masks are bool [h,w,N]; class ids int32 [N]
(negative for COCO crowd regions, as Matterport does).

Subclass ``Dataset`` as in Matterport: ``add_class``/``add_image`` in a loader method,
override ``load_mask`` (and ``load_image`` when images are not files), then ``prepare()``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from model.boxes import box_iou
from runtime.image import load_image
from runtime.resize import resize_bilinear


class Dataset:
    """Base class: classes from one or more sources, images, and their masks."""

    def __init__(self, class_map=None):
        self._image_ids = np.zeros(0, dtype=np.int64)
        self.image_info: List[dict] = []
        self.class_info: List[dict] = [{"source": "", "id": 0, "name": "BG"}]  # BG first
        self.source_class_ids: Dict[str, List[int]] = {}

    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        if "." in source:
            raise ValueError(f"source name {source!r} cannot contain a dot")
        if any(c["source"] == source and c["id"] == class_id for c in self.class_info):
            return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id, path, **kwargs) -> None:
        self.image_info.append({"id": image_id, "source": source, "path": path, **kwargs})

    def image_reference(self, image_id: int) -> str:
        """Where the image comes from (a path or URL), for messages."""
        return str(self.image_info[image_id].get("path", ""))

    def prepare(self, class_map=None) -> None:
        """Build the ids and lookup tables; call after adding classes and images."""
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [c["name"].split(",")[0] for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {f"{c['source']}.{c['id']}": i for i, c in enumerate(self.class_info)}
        self.image_from_source_map = {f"{c['source']}.{c['id']}": i for i, c in enumerate(self.image_info)}
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [i for i, c in enumerate(self.class_info) if i == 0 or c["source"] == source]
            for source in self.sources
        }

    def map_source_class_id(self, source_class_id: str) -> int:
        """"coco.12" -> the internal class id."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id: int, source: str):
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"class {class_id} is from source {info['source']!r}, not {source!r}")
        return info["id"]

    @property
    def image_ids(self) -> np.ndarray:
        return self._image_ids

    def source_image_link(self, image_id: int) -> str:
        return self.image_info[image_id]["path"]

    def load_image(self, image_id: int) -> np.ndarray:
        """RGB uint8 [h,w,3]; grayscale and RGBA files are converted (runtime.load_image)."""
        return load_image(self.image_info[image_id]["path"])

    def load_mask(self, image_id: int) -> Tuple[np.ndarray, np.ndarray]:
        """Override: bool masks [h,w,N] and int32 class ids [N]. The base has none."""
        return np.empty([0, 0, 0], bool), np.empty([0], np.int32)


# ----------------------------------------------------------------------------- shapes
SHAPE_NAMES = ("square", "circle", "triangle")


@dataclasses.dataclass(frozen=True)
class ShapesStyle:
    """How ShapesDataset draws. The defaults are Matterport's toy set (plain
    backgrounds, square frames, 1-4 upright shapes of half-size [side/16, side/4), box
    overlap at most 0.3); ``WIDE_SHAPES`` and ``VARIED_SHAPES`` draw a wider variety for
    training (``SHAPES_STYLES`` names them)."""

    max_shapes: int = 4  # 1..max_shapes shapes drawn (fewer when overlaps drop some)
    size_divisors: Tuple[int, int] = (16, 4)  # half-size in [min_side // a, min_side // b)
    max_overlap: float = 0.3  # a shape whose box IoU with a kept one exceeds this is dropped
    max_aspect: float = 1.0  # frame aspect ratio log-uniform in [1/a, a], area of height x width
    gradient: float = 0.0  # probability of a two-colour linear gradient background
    max_noise: float = 0.0  # Gaussian pixel noise, sigma uniform in [0, max_noise] (0-255)
    max_rotation: float = 0.0  # squares and triangles turned by uniform [-a, a] degrees
    clutter: float = 0.0  # probability of a cluttered background (smooth colour noise, line strokes)
    mosaic: float = 0.0  # probability of a background of irregular hard-edged cells (a Voronoi mosaic)
    grating: float = 0.0  # probability of a periodic background (one grating, or two crossed)


WIDE_SHAPES = ShapesStyle(max_shapes=6, size_divisors=(24, 4), max_overlap=0.5, max_aspect=1.6,
                          gradient=0.5, max_noise=16.0)
VARIED_SHAPES = ShapesStyle(max_shapes=7, size_divisors=(24, 4), max_overlap=0.5, max_aspect=1.8,
                            gradient=0.3, max_noise=16.0, max_rotation=30.0, clutter=0.6)
MOSAIC_SHAPES = dataclasses.replace(VARIED_SHAPES, mosaic=0.5)
PERIODIC_SHAPES = dataclasses.replace(VARIED_SHAPES, grating=0.5)
SHAPES_STYLES = {"standard": ShapesStyle(), "wide": WIDE_SHAPES, "varied": VARIED_SHAPES, "mosaic": MOSAIC_SHAPES,
                 "periodic": PERIODIC_SHAPES}


class ShapesDataset(Dataset):
    """Synthetic squares, circles and triangles (Matterport's toy set), deterministic for
    a seed, any image size; ``style`` widens the variety (ShapesStyle). Shapes may
    overlap; later shapes occlude earlier ones and the masks account for it."""

    def load_shapes(self, count: int, height: int = 128, width: int = 128, seed: int = 0,
                    style: ShapesStyle = ShapesStyle()) -> None:
        for index, name in enumerate(SHAPE_NAMES, start=1):
            self.add_class("shapes", index, name)
        rng = np.random.default_rng(seed)
        for image_id in range(count):
            frame_h, frame_w = _frame_size(rng, height, width, style.max_aspect)
            background, shapes = random_image_spec(rng, frame_h, frame_w, style)
            extra = {}
            if style.gradient > 0 and rng.random() < style.gradient:
                extra["gradient"] = (tuple(int(v) for v in rng.integers(0, 256, 3)), float(rng.uniform(0, 2 * math.pi)))
            if style.clutter > 0 and rng.random() < style.clutter:
                extra["clutter"] = int(rng.integers(0, 2 ** 31 - 1))
            if style.mosaic > 0 and rng.random() < style.mosaic:
                extra["mosaic"] = int(rng.integers(0, 2 ** 31 - 1))
            if style.grating > 0 and rng.random() < style.grating:
                extra["grating"] = int(rng.integers(0, 2 ** 31 - 1))
            if style.max_noise > 0:
                extra["noise"] = (float(rng.uniform(0, style.max_noise)), int(rng.integers(0, 2 ** 31 - 1)))
            self.add_image("shapes", image_id=image_id, path=None, width=frame_w, height=frame_h,
                           bg_color=background, shapes=shapes, **extra)

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"shapes image {info['id']}: " + ", ".join(s[0] for s in info["shapes"])

    def load_image(self, image_id: int) -> np.ndarray:
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        pixels = np.empty((height, width, 3), np.float32)
        pixels[:] = info["bg_color"]
        if "gradient" in info:  # the background colour blends into a second one along a direction
            color, angle = info["gradient"]
            t = linear_ramp(height, width, angle)[:, :, None]  # [h,w,1]
            pixels = pixels * (1 - t) + np.asarray(color, np.float32) * t
        if "grating" in info:
            pixels = grating(pixels, np.random.default_rng(info["grating"]))
        if "mosaic" in info:
            pixels = mosaic(pixels, np.random.default_rng(info["mosaic"]))
        if "clutter" in info:
            pixels = clutter(pixels, np.random.default_rng(info["clutter"]))
        for name, color, dims in info["shapes"]:
            pixels[shape_mask(name, dims, height, width)] = color
        if "noise" in info:
            sigma, seed = info["noise"]
            pixels += sigma * np.random.default_rng(seed).standard_normal(pixels.shape, dtype=np.float32)
        return np.clip(np.around(pixels), 0, 255).astype(np.uint8)

    def load_mask(self, image_id: int) -> Tuple[np.ndarray, np.ndarray]:
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        masks = np.stack([shape_mask(name, dims, height, width) for name, _, dims in info["shapes"]], axis=-1)
        visible = np.ones((height, width), bool)
        for i in range(masks.shape[-1] - 1, -1, -1):  # later shapes are drawn on top
            masks[:, :, i] &= visible
            visible &= ~masks[:, :, i]
        keep = masks.any(axis=(0, 1))  # fully hidden shapes are not instances
        class_ids = np.array([self.class_names.index(s[0]) for s in info["shapes"]], np.int32)
        return masks[:, :, keep], class_ids[keep]


def linear_ramp(height: int, width: int, angle: float) -> np.ndarray:
    """float32 [h,w] rising linearly from 0 to 1 along the direction ``angle`` (radians,
    0 = left to right)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = y * math.sin(angle) + x * math.cos(angle)
    return (t - t.min()) / max(float(t.max() - t.min()), 1e-6)


def clutter(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 [h,w,3] background ``pixels`` blended with a second colour through smooth
    value noise (a random grid of 3-12 cells, bilinearly upsampled), then crossed by 0-6
    straight strokes 1-3 pixels wide in random colours: structure that is not an object."""
    height, width = pixels.shape[:2]
    other = rng.integers(0, 256, 3).astype(np.float32)
    cells = int(rng.integers(3, 13))
    grid = rng.random((cells, cells)).astype(np.float32)
    t = resize_bilinear(grid, (height, width))[:, :, None] * rng.uniform(0.3, 1.0)  # [h,w,1]
    pixels = pixels * (1 - t) + other * t
    y, x = _pixel_centres(height, width)
    for _ in range(int(rng.integers(0, 7))):
        (y1, y2), (x1, x2) = rng.uniform(0, height, 2), rng.uniform(0, width, 2)
        length2 = max((y2 - y1) ** 2 + (x2 - x1) ** 2, 1e-9)
        along = np.clip(((y - y1) * (y2 - y1) + (x - x1) * (x2 - x1)) / length2, 0, 1)  # [h,w]
        distance = np.hypot(y - (y1 + along * (y2 - y1)), x - (x1 + along * (x2 - x1)))
        pixels[distance <= rng.uniform(0.5, 1.5)] = rng.integers(0, 256, 3)
    return pixels


def grating(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 [h,w,3] background ``pixels`` blended towards a random colour by a periodic
    pattern: one grating, or two crossed at 60-120 degrees (their exclusive or), each at a
    random angle, period 4-40 pixels, phase and duty cycle 0.3-0.7, mostly hard-edged
    (a square wave), else soft (a raised cosine): repeated structure that is not an object."""
    height, width = pixels.shape[:2]
    y, x = _pixel_centres(height, width)
    angle = rng.uniform(0, math.pi)
    waves = []
    for k in range(int(rng.integers(1, 3))):
        angle += rng.uniform(math.pi / 3, 2 * math.pi / 3) if k else 0.0
        period, phase, duty = rng.uniform(4, 40), rng.uniform(0, 1), rng.uniform(0.3, 0.7)
        waves.append(wave(y, x, angle, period, phase, duty if rng.random() < 0.7 else None))
    t = waves[0] if len(waves) == 1 else waves[0] + waves[1] - 2 * waves[0] * waves[1]  # [h,w] in [0,1]
    other = rng.integers(0, 256, 3).astype(np.float32)
    t = (t * rng.uniform(0.3, 1.0))[:, :, None]  # [h,w,1] pattern contrast
    return pixels * (1 - t) + other * t


def wave(y: np.ndarray, x: np.ndarray, angle: float, period: float, phase: float,
         duty: Optional[float]) -> np.ndarray:
    """float32 [h,w] grating in [0, 1] at pixel centres ``y``, ``x`` [h,w]: varying along the
    direction ``angle`` (radians, 0 = left to right) with ``period`` pixels, constant across
    it; a square wave that is 1 over the first ``duty`` of each period, or with duty None a
    raised cosine (soft edges). ``phase`` in periods."""
    u = ((y * math.sin(angle) + x * math.cos(angle)) / period + phase) % 1.0  # [h,w] position in a period
    return ((u < duty) if duty is not None else 0.5 + 0.5 * np.cos(2 * math.pi * u)).astype(np.float32)


def mosaic(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 [h,w,3] background ``pixels`` split into the Voronoi cells of 6-48 random
    points, each cell blended towards one of two random colours by its own amount:
    irregular polygons with hard edges and corners that are not objects."""
    height, width = pixels.shape[:2]
    cells = int(rng.integers(6, 49))
    points = rng.uniform(0, 1, (cells, 2)) * (height, width)  # [K,2] (y, x) pixels
    y, x = _pixel_centres(height, width)
    nearest = np.argmin((y[:, :, None] - points[:, 0]) ** 2 + (x[:, :, None] - points[:, 1]) ** 2, axis=-1)  # [h,w]
    colors = rng.integers(0, 256, (2, 3)).astype(np.float32)[rng.integers(0, 2, cells)]  # [K,3]
    amount = (rng.uniform(0, 1, cells) * rng.uniform(0.3, 1.0)).astype(np.float32)[nearest][:, :, None]  # [h,w,1]
    return pixels * (1 - amount) + colors[nearest] * amount


def _frame_size(rng: np.random.Generator, height: int, width: int, max_aspect: float) -> Tuple[int, int]:
    """(h, w): ``height`` x ``width``, or with max_aspect > 1 a frame of about that area
    whose aspect ratio h/w is log-uniform in [1/max_aspect, max_aspect]."""
    if max_aspect <= 1:
        return height, width
    aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
    area = height * width
    return max(16, int(round(math.sqrt(area * aspect)))), max(16, int(round(math.sqrt(area / aspect))))


def shapes_dataset(count: int, height: int = 128, width: int = 128, seed: int = 0,
                   style: ShapesStyle = ShapesStyle()) -> ShapesDataset:
    """A prepared ShapesDataset of ``count`` images (``style``: see ShapesStyle)."""
    dataset = ShapesDataset()
    dataset.load_shapes(count, height, width, seed=seed, style=style)
    dataset.prepare()
    return dataset


def shapes_clip(frames: int, height: int = 128, width: int = 128, seed: int = 0) -> Iterator[np.ndarray]:
    """RGB uint8 [h,w,3] frames of 1-4 shapes gliding over a plain background and bouncing
    off its edges (a deterministic clip for video tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    background, shapes = random_image_spec(rng, height, width)
    velocities = rng.uniform(-2.0, 2.0, (len(shapes), 2)) * min(height, width) / 128
    for t in range(frames):
        image = np.empty((height, width, 3), np.uint8)
        image[:] = background
        for (name, color, (cy, cx, size)), (vy, vx) in zip(shapes, velocities):
            y, x = _bounce(cy + vy * t, size, height - size), _bounce(cx + vx * t, size, width - size)
            image[shape_mask(name, (y, x, size), height, width)] = color
        yield image


def _bounce(position: float, low: float, high: float) -> float:
    """``position`` folded into [low, high], as a point bouncing between two walls."""
    span = max(high - low, 1e-9)
    phase = (position - low) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def random_image_spec(rng: np.random.Generator, height: int, width: int, style: ShapesStyle = ShapesStyle()):
    """Background colour and 1-``style.max_shapes`` shapes (name, colour, (cy, cx, size)
    or, turned, (cy, cx, size, degrees)); shapes whose boxes overlap a kept one by IoU >
    ``style.max_overlap`` are dropped, as Matterport does (0.3)."""
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    shapes, boxes = [], []
    min_side = min(height, width)
    low, high = style.size_divisors
    for _ in range(int(rng.integers(1, style.max_shapes + 1))):
        name = SHAPE_NAMES[int(rng.integers(0, 3))]
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        size = int(rng.integers(max(4, min_side // low), max(5, min_side // high)))
        cy = int(rng.integers(size, max(size + 1, height - size)))
        cx = int(rng.integers(size, max(size + 1, width - size)))
        box = np.array([cy - size, cx - size, cy + size, cx + size], np.float64)
        overlap = box_iou(torch.from_numpy(box[None]), torch.from_numpy(np.array(boxes))).max() if boxes else 0
        if overlap > style.max_overlap:
            continue
        boxes.append(box)
        dims = (cy, cx, size)
        if style.max_rotation > 0 and name != "circle":
            dims += (float(rng.uniform(-style.max_rotation, style.max_rotation)),)
        shapes.append((name, color, dims))
    return background, shapes


def shape_mask(name: str, dims: Tuple[float, ...], height: int, width: int) -> np.ndarray:
    """bool [h,w] mask of one shape, sampled at pixel centres. dims: (cy, cx, size) in
    pixels, size the half-side (square) or the circumradius; a fourth value turns the
    shape by that many degrees about its centre."""
    cy, cx, size = dims[:3]
    y, x = _pixel_centres(height, width)
    if len(dims) > 3 and dims[3]:  # sample the upright shape at the points turned back
        cos, sin = math.cos(math.radians(dims[3])), math.sin(math.radians(dims[3]))
        y, x = cy + cos * (y - cy) + sin * (x - cx), cx - sin * (y - cy) + cos * (x - cx)
    if name == "square":
        return (np.abs(y - cy) <= size) & (np.abs(x - cx) <= size)
    if name == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= size ** 2
    if name == "triangle":  # apex up, equilateral, inscribed in the circle of radius size
        top = cy - size
        bottom = cy + size * math.sin(math.radians(30))
        half_width = (y - top) / (bottom - top) * size * math.cos(math.radians(30))
        return (y >= top) & (y <= bottom) & (np.abs(x - cx) <= half_width)
    raise ValueError(f"unknown shape {name!r}")


def _pixel_centres(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """float64 [h,w] y and x of every pixel's centre."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return y + 0.5, x + 0.5
