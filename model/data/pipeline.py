"""Training inputs: ground truth molded like inference, RPN targets, and batches.

Shapes: H, W molded size; N instances in an image; G = MAX_GT_INSTANCES; A anchors;
m mini-mask size (MINI_MASK_SHAPE). Boxes are (y1, x1, y2, x2) pixels of the molded
image, (y2, x2) exclusive. Masks are bool.

Every random choice of a sample (crop, flip, augmentation, anchor subsampling) comes
from a generator seeded by (seed, epoch, position), so a resumed or distributed run
sees exactly the same data as an uninterrupted one.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch

from model.anchors import pixel_anchors
from model.boxes import box_iou, box_refinement
from model.config import Config
from model.data.augment import Augmentation, as_augmentation
from model.data.dataset import Dataset
from runtime.image import ImageError
from runtime.molding import mold_image, resize_image
from runtime.resize import resize_bilinear, zoom_nearest

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset sample that cannot be used; the message names the image."""


class ImageTargets(NamedTuple):
    """Ground truth of one molded image (Matterport's load_image_gt)."""

    image: np.ndarray  # uint8 [H,W,3]
    window: Tuple[int, int, int, int]
    class_ids: np.ndarray  # int32 [N], negative = crowd
    boxes: np.ndarray  # int32 [N,4] pixels
    masks: np.ndarray  # bool [m,m,N] mini masks, or [H,W,N]
    active_class_ids: np.ndarray  # int32 [NUM_CLASSES], 1 for the classes of the image's source


def extract_bboxes(masks: np.ndarray) -> np.ndarray:
    """int32 [N,4] boxes enclosing bool [h,w,N] masks ((0,0,0,0) for empty masks)."""
    boxes = np.zeros((masks.shape[-1], 4), np.int32)
    for i in range(masks.shape[-1]):
        rows = np.nonzero(masks[:, :, i].any(axis=1))[0]
        cols = np.nonzero(masks[:, :, i].any(axis=0))[0]
        if len(rows):
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def minimize_masks(boxes: np.ndarray, masks: np.ndarray, mini_shape: Tuple[int, int]) -> np.ndarray:
    """Crop each mask to its box and resize (bilinear, rounded) to ``mini_shape``."""
    mini = np.zeros(tuple(mini_shape) + (masks.shape[-1],), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        crop = masks[y1:y2, x1:x2, i].astype(np.float64)
        mini[:, :, i] = np.around(resize_bilinear(crop, mini_shape)).astype(bool)
    return mini


def load_image_targets(dataset: Dataset, config: Config, image_id: int, rng: np.random.Generator,
                       flip: bool = True, augmentation: Optional[Augmentation] = None) -> ImageTargets:
    """Load, mold (as inference does), flip/augment, and derive boxes from the masks."""
    image = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    reference = dataset.image_reference(image_id)
    if masks.ndim != 3 or masks.shape[-1] == 0:
        masks = np.zeros(image.shape[:2] + (0,), bool)
    if masks.shape[:2] != image.shape[:2] or masks.shape[-1] != len(class_ids):
        raise DataError(f"{reference}: masks {masks.shape} do not fit image {image.shape[:2]} "
                        f"and {len(class_ids)} class ids")
    resized = resize_image(image, config.molding_spec(), rng)
    masks = zoom_nearest(masks.astype(bool), resized.scale) if resized.scale != 1 else masks.astype(bool)
    if resized.crop is not None:
        y, x, h, w = resized.crop
        masks = masks[y:y + h, x:x + w]
    else:
        masks = np.pad(masks, resized.padding, mode="constant")
    image = resized.image
    if flip and rng.random() < 0.5:
        image, masks = image[:, ::-1], masks[:, ::-1]
    if augmentation is not None:
        shapes = (image.shape, masks.shape)
        image, masks = augmentation(image, masks, rng)
        if (image.shape, masks.shape) != shapes:
            raise DataError(f"{reference}: augmentation changed the image or mask shape")
    keep = masks.any(axis=(0, 1))  # instances cropped away or too small after resizing
    masks, class_ids = masks[:, :, keep], np.asarray(class_ids, np.int32)[keep]
    boxes = extract_bboxes(masks)
    active = np.zeros(dataset.num_classes, np.int32)
    active[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1
    if config.USE_MINI_MASK:
        masks = minimize_masks(boxes, masks, config.MINI_MASK_SHAPE)
    return ImageTargets(np.ascontiguousarray(image), resized.window, class_ids, boxes,
                        np.ascontiguousarray(masks), active)


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU float64 [N,M] of two pixel box sets (Matterport's utils.compute_overlaps)."""
    return box_iou(torch.from_numpy(boxes1.astype(np.float64)), torch.from_numpy(boxes2.astype(np.float64))).numpy()


def build_rpn_targets(anchors: np.ndarray, gt_class_ids: np.ndarray, gt_boxes: np.ndarray,
                      config: Config, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Matterport's RPN targets for pixel anchors [A,4] and pixel GT boxes [N,4].

    Returns rpn_match int32 [A] (1 positive, -1 negative, 0 neutral) and rpn_bbox
    float32 [RPN_TRAIN_ANCHORS_PER_IMAGE,4]: deltas / RPN_BBOX_STD_DEV of the positive
    anchors in anchor order, zero-padded. Positive: IoU >= 0.7 or the best anchor of a
    GT box; negative: IoU < 0.3 and not touching a crowd box; at most half positive.
    """
    match = np.zeros(len(anchors), np.int32)
    rpn_bbox = np.zeros((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32)
    crowd = gt_class_ids < 0
    if crowd.any():
        no_crowd = compute_overlaps(anchors, gt_boxes[crowd]).max(axis=1) < 0.001
        gt_boxes, gt_class_ids = gt_boxes[~crowd], gt_class_ids[~crowd]
    else:
        no_crowd = np.ones(len(anchors), bool)
    if len(gt_boxes) == 0:
        match[no_crowd] = -1
    else:
        overlaps = compute_overlaps(anchors, gt_boxes)  # [A,N]
        best_gt = overlaps.argmax(axis=1)
        best_iou = overlaps[np.arange(len(anchors)), best_gt]
        match[(best_iou < 0.3) & no_crowd] = -1
        match[np.argwhere(overlaps == overlaps.max(axis=0))[:, 0]] = 1  # each GT's best anchors
        match[best_iou >= 0.7] = 1
    half = config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2
    positive = np.nonzero(match == 1)[0]
    if len(positive) > half:
        match[rng.choice(positive, len(positive) - half, replace=False)] = 0
    negative = np.nonzero(match == -1)[0]
    extra = len(negative) - (config.RPN_TRAIN_ANCHORS_PER_IMAGE - np.sum(match == 1))
    if extra > 0:
        match[rng.choice(negative, extra, replace=False)] = 0
    positive = np.nonzero(match == 1)[0]
    if len(positive):
        gt = gt_boxes[best_gt[positive]].astype(np.float64)
        deltas = box_refinement(torch.from_numpy(anchors[positive]), torch.from_numpy(gt)).numpy()  # [P,4]
        rpn_bbox[:len(positive)] = deltas / np.asarray(config.RPN_BBOX_STD_DEV)
    return match, rpn_bbox


class TrainingSample(NamedTuple):
    """One image's network inputs and targets, fixed size so batches stack.

    images float32 [3,H,W]; windows float32 [4] pixels; active_class_ids int32 [C];
    rpn_match int32 [A]; rpn_bbox float32 [256,4]; gt_class_ids int32 [G] (0 = padding);
    gt_boxes float32 [G,4] pixels; gt_masks bool [G,m,m].
    """

    images: np.ndarray
    windows: np.ndarray
    active_class_ids: np.ndarray
    rpn_match: np.ndarray
    rpn_bbox: np.ndarray
    gt_class_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_masks: np.ndarray


def epoch_order(num_images: int, count: int, seed: int, epoch: int) -> np.ndarray:
    """``count`` image indices for an epoch: shuffled passes over the dataset."""
    rng = np.random.default_rng([seed, epoch])
    passes = -(-count // num_images)
    return np.concatenate([rng.permutation(num_images) for _ in range(passes)])[:count]


class TrainingData(torch.utils.data.Dataset):
    """Map-style dataset over one epoch's shuffled positions (``set_epoch`` first).

    ``augmentation``: a policy name (model.data.augment.POLICIES), an Augmentation
    callable or an imgaug augmenter; applied after the ``flip``.

    An image that fails to load or has no instances is skipped (with a warning naming
    it when it fails) and the next image id takes its place; nothing stops an epoch.
    """

    def __init__(self, dataset: Dataset, config: Config, seed: int = 0, samples_per_epoch: int = 0,
                 flip: bool = True, augmentation=None):
        if config.IMAGE_RESIZE_MODE not in ("square", "crop"):
            raise ValueError('training needs IMAGE_RESIZE_MODE "square" or "crop" (one image size per batch)')
        if len(dataset.image_ids) == 0:
            raise DataError("the dataset has no images")
        self.dataset, self.config, self.seed = dataset, config, seed
        self.flip, self.augmentation = flip, as_augmentation(augmentation)
        self.samples = samples_per_epoch or len(dataset.image_ids)
        self.anchors = pixel_anchors(config.IMAGE_SHAPE[:2], config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                     config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = epoch_order(len(self.dataset.image_ids), self.samples, self.seed, epoch)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, position: int) -> TrainingSample:
        count = len(self.dataset.image_ids)
        for attempt in range(count):
            image_id = int(self.dataset.image_ids[(self.order[position] + attempt) % count])
            rng = np.random.default_rng([self.seed, self.epoch, position, attempt])
            try:
                targets = load_image_targets(self.dataset, self.config, image_id, rng, self.flip,
                                             self.augmentation)
            except (ImageError, DataError, OSError) as exc:
                log.warning("skipping image: %s", exc)
                continue
            if np.any(targets.class_ids > 0):
                return self._sample(targets, rng)
            log.debug("skipping %s: no instances", self.dataset.image_reference(image_id))
        raise DataError("no image of the dataset could be loaded with at least one instance")

    def _sample(self, t: ImageTargets, rng: np.random.Generator) -> TrainingSample:
        c = self.config
        class_ids, boxes, masks = t.class_ids, t.boxes, t.masks
        if len(class_ids) > c.MAX_GT_INSTANCES:
            keep = rng.choice(len(class_ids), c.MAX_GT_INSTANCES, replace=False)
            class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
        rpn_match, rpn_bbox = build_rpn_targets(self.anchors, class_ids, boxes, c, rng)
        g = c.MAX_GT_INSTANCES
        gt_class_ids = np.zeros(g, np.int32)
        gt_boxes = np.zeros((g, 4), np.float32)
        gt_masks = np.zeros((g,) + masks.shape[:2], bool)
        n = len(class_ids)
        gt_class_ids[:n], gt_boxes[:n], gt_masks[:n] = class_ids, boxes, masks.transpose(2, 0, 1)
        return TrainingSample(
            images=mold_image(t.image, c.MEAN_PIXEL), windows=np.asarray(t.window, np.float32),
            active_class_ids=t.active_class_ids, rpn_match=rpn_match, rpn_bbox=rpn_bbox,
            gt_class_ids=gt_class_ids, gt_boxes=gt_boxes, gt_masks=gt_masks)
