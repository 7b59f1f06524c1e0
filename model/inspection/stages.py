"""Step-by-step detection: every stage of one image as named numpy arrays (Matterport's
"Step by Step Detection" and inspect_model notebook), built on ``MaskRCNN.run_stages``.

Shapes: A anchors, k proposals before NMS (PRE_NMS_LIMIT), P after NMS
(POST_NMS_ROIS_INFERENCE), K detections, N ground-truth instances, C classes, M the
mask size (28). Boxes are (y1, x1, y2, x2) in pixels of the molded image unless a
field says otherwise; ``detections`` is in the original image's pixels, exactly what
``MaskRCNN.detect`` returns for the image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from model.boxes import apply_box_deltas
from model.data.pipeline import ImageTargets, build_rpn_targets, load_image_targets
from model.ops.proposals import refined_anchors
from model.ops.roi_align import pyramid_roi_align
from runtime.image import to_rgb_uint8
from runtime.molding import mold_images
from runtime.postprocess import unmold_detections
from runtime.results import Detections

# layers whose activations are kept by default: one per backbone stage, an FPN output, the RPN
DEFAULT_ACTIVATIONS = ("res2c_out", "res3d_out", "res4f_out", "res5c_out", "fpn_p2", "rpn_conv_shared")


@dataclass
class GroundTruth:
    """Ground truth in the molded image: boxes int32 [N,4] pixels, class_ids int32 [N]
    (negative: crowd), anchor_match int32 [A] (1 positive, -1 negative, 0 neutral: the
    RPN's training labels, Matterport's build_rpn_targets); sample: what training gets
    of the image (molded image, boxes, mini masks), when it came from a dataset."""

    boxes: np.ndarray
    class_ids: np.ndarray
    anchor_match: np.ndarray
    sample: Optional[ImageTargets] = None


@dataclass
class Inspection:
    """One image through the model, stage by stage (see the module docstring for shapes)."""

    image: np.ndarray  # uint8 [h,w,3] the input
    molded_image: np.ndarray  # uint8 [H,W,3] resized and padded, before the mean is taken off
    window: tuple  # (y1,x1,y2,x2) pixels of the image inside the molded one
    anchors: np.ndarray  # float32 [A,4]
    rpn_scores: np.ndarray  # float32 [A] foreground probability
    anchor_refined: np.ndarray  # float32 [A,4] every anchor moved by its own RPN deltas
    pre_nms_boxes: np.ndarray  # float32 [k,4] refined top-k anchors (proposals before NMS)
    pre_nms_scores: np.ndarray  # float32 [k]
    proposals: np.ndarray  # float32 [P,4] after NMS, by score (zero rows dropped)
    roi_class_ids: np.ndarray  # int64 [P] the box head's best class per proposal (0: background)
    roi_scores: np.ndarray  # float32 [P] its probability
    roi_refined: np.ndarray  # float32 [P,4] proposals moved by the deltas of that class
    pooled: np.ndarray  # float32 [P,D,7,7] the box head's input (ROIAlign of the FPN levels)
    detections: Detections  # as MaskRCNN.detect returns them (original pixels)
    raw_masks: np.ndarray  # float32 [K,M,M] each detection's class mask, before pasting
    activations: Dict[str, np.ndarray] = field(default_factory=dict)  # name -> float32 [C,h,w]
    ground_truth: Optional[GroundTruth] = None


@torch.inference_mode()
def inspect_image(model, image: np.ndarray, activations: Sequence[str] = DEFAULT_ACTIVATIONS,
                  ground_truth: Optional[GroundTruth] = None) -> Inspection:
    """Run ``model`` (a MaskRCNN) on one RGB uint8 image and keep every stage.

    activations: Keras layer names (``model.keras_layers()``, plus the backbone's
    ``resNx_out`` stage outputs) whose outputs to keep, [C,h,w] each.
    """
    config = model.config
    image = to_rgb_uint8(image)
    was_training = model.training
    model.eval()
    try:
        molded = mold_images([image], config.molding_spec())
        height, width = molded.images.shape[2:]
        hooks = _activation_hooks(model, activations)
        try:
            windows = torch.from_numpy(molded.windows.astype(np.float32))
            trace = model.run_stages(torch.from_numpy(molded.images), windows)
        finally:
            for hook in hooks:
                hook.remove()
    finally:
        model.train(was_training)
    scale = np.array([height, width, height, width], np.float32)
    anchors = trace.anchors
    scores, deltas = trace.rpn.probs[0, :, 1], trace.rpn.deltas[0]  # [A], [A,4]
    std = torch.tensor(config.RPN_BBOX_STD_DEV, dtype=deltas.dtype)
    order, pre_scores, pre_boxes = refined_anchors(scores[None], deltas[None], anchors,
                                                   list(config.RPN_BBOX_STD_DEV), config.PRE_NMS_LIMIT)
    rois = trace.rois[0]
    rois = rois[(rois != 0).any(dim=1)]  # [P,4] without the zero padding
    probs, box_deltas = trace.box_head.probs[0, :len(rois)], trace.box_head.deltas[0, :len(rois)]  # [P,C], [P,C,4]
    roi_class = probs.argmax(dim=1)
    class_deltas = box_deltas[torch.arange(len(rois)), roi_class] * torch.tensor(config.BBOX_STD_DEV)  # [P,4]
    levels = list(trace.pyramid[:4])
    pooled = pyramid_roi_align(rois[None], levels, [height, width], config.POOL_SIZE)[0] if len(rois) else \
        torch.zeros((0, levels[0].shape[1], config.POOL_SIZE, config.POOL_SIZE))
    out = [t.numpy() for t in trace.outputs]
    detections = unmold_detections(out[0][0], out[1][0], out[3][0], out[2][0], out[4][0], tuple(molded.windows[0]),
                                   (height, width), molded.original_shapes[0])
    count = int(out[0][0])
    return Inspection(
        image=image,
        molded_image=_unmean(molded.images[0], config.MEAN_PIXEL),
        window=tuple(int(v) for v in molded.windows[0]),
        anchors=(anchors.numpy() * scale).astype(np.float32),
        rpn_scores=scores.numpy().astype(np.float32),
        anchor_refined=(apply_box_deltas(anchors, deltas * std).numpy() * scale).astype(np.float32),
        pre_nms_boxes=(pre_boxes[0].numpy() * scale).astype(np.float32),
        pre_nms_scores=pre_scores[0].numpy().astype(np.float32),
        proposals=(rois.numpy() * scale).astype(np.float32),
        roi_class_ids=roi_class.numpy(),
        roi_scores=probs.max(dim=1).values.numpy().astype(np.float32),
        roi_refined=(apply_box_deltas(rois, class_deltas).numpy() * scale).astype(np.float32),
        pooled=pooled.numpy().astype(np.float32),
        detections=detections,
        raw_masks=out[4][0][:count].astype(np.float32),
        activations={hook.name: hook.value[0].float().numpy() for hook in hooks if hook.value is not None},
        ground_truth=ground_truth,
    )


def dataset_ground_truth(model, dataset, image_id: int, seed: int = 0) -> GroundTruth:
    """The ground truth of ``dataset``'s image, molded as inference molds it (no flip), with
    the RPN's anchor labels for the model's anchors."""
    config = model.config
    targets = load_image_targets(dataset, config, image_id, np.random.default_rng(seed), flip=False)
    height, width = targets.image.shape[:2]
    anchors = model.anchors((height, width)) * np.array([height, width, height, width])
    match, _ = build_rpn_targets(anchors, targets.class_ids, targets.boxes, config, np.random.default_rng(seed))
    return GroundTruth(targets.boxes, targets.class_ids, match, targets)


def augmented_samples(dataset, config, image_id: int, augmentation="default", count: int = 8,
                      seed: int = 0) -> List[ImageTargets]:
    """``count`` draws of what training gets of one image under ``augmentation`` (a policy
    name, an Augmentation or an imgaug augmenter; model.data.augment): molded, augmented,
    boxes from the masks, full-size masks [H,W,N] (no mini masks) so they can be drawn."""
    from model.data.augment import as_augmentation

    augment = as_augmentation(augmentation)
    full = dataclasses.replace(config, USE_MINI_MASK=False)
    return [load_image_targets(dataset, full, image_id, np.random.default_rng([seed, i]), flip=False,
                               augmentation=augment) for i in range(count)]


def _unmean(molded: np.ndarray, mean_pixel) -> np.ndarray:
    """float32 [3,H,W] RGB minus the mean -> uint8 [H,W,3] (the zero padding comes back as the mean colour)."""
    image = molded.transpose(1, 2, 0) + np.asarray(mean_pixel, np.float32)  # [H,W,3]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class _Hook:
    """A forward hook that keeps one module's output: its first call's, for a module used
    more than once (the RPN head runs on P2 first, then P3..P6)."""

    def __init__(self, name: str, module):
        self.name, self.value = name, None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        if self.value is None:
            self.value = output.detach().clone()

    def remove(self):
        self.handle.remove()


def activation_layers(model) -> Dict[str, torch.nn.Module]:
    """Layers whose outputs can be kept: the Keras layers with weights (``conv1``,
    ``res3a_branch2a``, ``fpn_p2``, ...) and the residual blocks' outputs (``res2c_out``)."""
    blocks = {f"res{block.block_id}_out": block for stage in model.backbone.stages for block in stage}
    return {**model.keras_layers(), **blocks}


def _activation_hooks(model, names: Sequence[str]):
    modules = activation_layers(model)
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"no layers named {unknown}; e.g. {', '.join(DEFAULT_ACTIVATIONS)}")
    return [_Hook(name, modules[name]) for name in names]
