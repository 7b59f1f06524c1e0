"""Matterport's Mask R-CNN (ResNet50/101-FPN) as one PyTorch module.

Shapes: B batch, H, W molded size (multiples of 64), A anchors, P proposals
(POST_NMS_ROIS_INFERENCE), C NUM_CLASSES, K DETECTION_MAX_INSTANCES, M mask size (28).
Boxes are (y1, x1, y2, x2); inside the network they are normalised to the molded
image, ``detect`` returns pixels of the original image.

``forward(images, windows)`` is the inference graph that gets exported: fixed-size
named outputs, no Python-side post-processing. ``detect(list_of_images)`` adds
molding and unmolding around it, like Matterport's ``MaskRCNN.detect``.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from model.anchors import generate_anchors
from model.backbone import BackboneFeatures, BatchNormMode, ResNet
from model.boxes import norm_boxes
from model.config import Config
from model.detection import DetectionBoxes, refine_detections
from model.fpn import FPN, PyramidFeatures
from model.heads import BoxHead, BoxHeadOutput, MaskHead
from model.ops.roi_align import pyramid_roi_align
from model.rpn import RPNHead, RPNOutput, propose
from runtime.molding import mold_images
from runtime.postprocess import unmold_detections
from runtime.results import Detections
from runtime.timing import StageClock


class InferenceOutputs(NamedTuple):
    """The exported graph's outputs (names are the ONNX output names).

    num_detections int64 [B]; boxes float [B,K,4] normalised; scores float [B,K];
    class_ids int64 [B,K]; masks float [B,K,M,M] probabilities of each detection's class.
    Slots after num_detections are zero.
    """

    num_detections: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor
    masks: torch.Tensor


class InferenceTrace(NamedTuple):
    """Every intermediate of one inference pass (for inspection and fidelity tests)."""

    backbone: BackboneFeatures
    pyramid: PyramidFeatures
    anchors: torch.Tensor  # [A,4]
    rpn: RPNOutput
    rois: torch.Tensor  # [B,P,4]
    box_head: BoxHeadOutput
    detections: DetectionBoxes
    all_masks: torch.Tensor  # [B,K,C,M,M]
    outputs: InferenceOutputs


class MaskRCNN(nn.Module):
    """Mask R-CNN built from a :class:`model.config.Config`."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config.validate()
        bn_mode = BatchNormMode(frozen=config.TRAIN_BN is False,
                                renorm_momentum=1.0 - config.BATCH_RENORM_MOMENTUM if config.BATCH_RENORM else None)
        depth = config.TOP_DOWN_PYRAMID_SIZE
        self.backbone = ResNet(config.BACKBONE, bn_mode)
        self.fpn = FPN(depth)
        self.rpn = RPNHead(depth, len(config.RPN_ANCHOR_RATIOS), config.RPN_ANCHOR_STRIDE)
        self.box_head = BoxHead(depth, config.POOL_SIZE, config.NUM_CLASSES,
                                config.FPN_CLASSIF_FC_LAYERS_SIZE, bn_mode)
        self.mask_head = MaskHead(depth, config.NUM_CLASSES, bn_mode)
        self._anchor_cache: Dict[Tuple[int, int], np.ndarray] = {}
        self.epoch = 0  # epochs trained so far (Matterport's model.epoch)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: Glorot-uniform kernels, zero biases, BN gamma 1 / beta 0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def keras_layers(self) -> Dict[str, nn.Module]:
        """Keras layer name -> module owning its weights (for .h5 import and for
        Matterport's layer-selection regexes)."""
        layers = {}
        for part in (self.backbone, self.fpn, self.rpn, self.box_head, self.mask_head):
            layers.update(part.keras_layers())
        return layers

    def train(self, mode=True, *args, **kwargs):
        """``train(True/False)`` sets the module mode, as for any nn.Module.

        ``train(train_dataset, val_dataset, learning_rate, epochs, layers="heads", ...)``
        trains, as Matterport's ``MaskRCNN.train`` (see model.training.loop.train_model).
        """
        if isinstance(mode, bool):
            return super().train(mode)
        from model.training.loop import train_model

        return train_model(self, mode, *args, **kwargs)

    # ----------------------------------------------------------------- the graph
    def anchors(self, image_shape: Tuple[int, int]) -> np.ndarray:
        """Normalised float32 anchors [A,4] for a molded (H, W), cached per shape."""
        key = (int(image_shape[0]), int(image_shape[1]))
        if key not in self._anchor_cache:
            c = self.config
            self._anchor_cache[key] = generate_anchors(
                key, c.RPN_ANCHOR_SCALES, c.RPN_ANCHOR_RATIOS, c.BACKBONE_STRIDES,
                c.RPN_ANCHOR_STRIDE)
        return self._anchor_cache[key]

    def run_stages(self, images: torch.Tensor, windows: torch.Tensor) -> InferenceTrace:
        """Run inference and keep every intermediate.

        images: float32 [B,3,H,W] molded (RGB minus MEAN_PIXEL), H and W multiples of 64.
        windows: [B,4] (y1, x1, y2, x2) pixels of the real image inside each molded one.
        """
        c = self.config
        height, width = check_image_size(images)
        backbone = self.backbone(images)
        pyramid = self.fpn(backbone)
        anchors = torch.from_numpy(self.anchors((height, width))).to(images.device)
        rpn = self.rpn(pyramid)
        rois = propose(rpn, anchors, c.POST_NMS_ROIS_INFERENCE, c.RPN_NMS_THRESHOLD,
                       c.PRE_NMS_LIMIT, c.RPN_BBOX_STD_DEV)
        levels = list(pyramid[:4])
        pooled = pyramid_roi_align(rois, levels, [height, width], c.POOL_SIZE)
        box_head = self.box_head(pooled)
        detections = refine_detections(
            rois, box_head.probs, box_head.deltas, norm_boxes(windows, height, width),
            c.BBOX_STD_DEV, c.DETECTION_MIN_CONFIDENCE, c.DETECTION_NMS_THRESHOLD,
            c.DETECTION_MAX_INSTANCES)
        mask_pooled = pyramid_roi_align(detections.boxes, levels, [height, width], c.MASK_POOL_SIZE)
        all_masks = self.mask_head(mask_pooled)  # [B,K,C,M,M]
        size = all_masks.shape[-1]
        index = detections.class_ids[:, :, None, None, None].expand(-1, -1, 1, size, size)
        masks = torch.gather(all_masks, 2, index).squeeze(2)  # [B,K,M,M]
        outputs = InferenceOutputs(detections.num_detections, detections.boxes,
                                   detections.scores, detections.class_ids, masks)
        return InferenceTrace(backbone, pyramid, anchors, rpn, rois, box_head, detections,
                              all_masks, outputs)

    def forward(self, images: torch.Tensor, windows: torch.Tensor) -> InferenceOutputs:
        """Inference graph: molded images [B,3,H,W] and pixel windows [B,4] ->
        :class:`InferenceOutputs` (fixed size, see there)."""
        return self.run_stages(images, windows).outputs

    # ------------------------------------------------------------ Matterport's detect
    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray], batch_size: Optional[int] = None,
               timings: Optional[Dict[str, float]] = None) -> List[Detections]:
        """Detect instances in RGB images of any size, like Matterport's ``detect``.

        images: a list of uint8 [h,w,3] RGB arrays (grayscale, RGBA and 16-bit are
        converted, see runtime.image). Returns one :class:`runtime.Detections` per image
        (rois in original pixels, class_ids, scores, bool masks [h,w,N]); each also
        answers ``r["rois"]`` like Matterport's dicts. ``batch_size`` defaults to
        config.BATCH_SIZE; any number of images is accepted. ``timings``: a dict to which
        the seconds spent molding, in the network and unmolding are added (as the
        runtime's detectors do: "mold", "infer", "post").
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise TypeError("detect() takes a list of images; for one image call detect([image])")
        images = list(images)
        if not images:
            raise ValueError("detect() needs at least one image, got an empty list")
        spec = self.config.molding_spec()
        step = batch_size or self.config.BATCH_SIZE
        if spec.mode != "square":  # sizes may differ after molding: one image at a time
            step = 1
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            results = []
            for start in range(0, len(images), step):
                results += self._detect_batch(images[start:start + step], spec, device, start, StageClock(timings))
            return results
        finally:
            self.train(was_training)

    def _detect_batch(self, images, spec, device, first_index, clock) -> List[Detections]:
        molded = mold_images(images, spec, first_index)
        clock.lap("mold")
        out = self(torch.from_numpy(molded.images).to(device),
                   torch.from_numpy(molded.windows.astype(np.float32)).to(device))
        out = InferenceOutputs(*(t.cpu().numpy() for t in out))
        clock.lap("infer")
        results = [
            unmold_detections(out.num_detections[i], out.boxes[i], out.class_ids[i],
                              out.scores[i], out.masks[i], tuple(molded.windows[i]),
                              molded.image_shape, molded.original_shapes[i])
            for i in range(len(images))
        ]
        clock.lap("post")
        return results


def check_image_size(images: torch.Tensor) -> Tuple[int, int]:
    """Return (H, W) of a molded batch, raising ValueError unless both are multiples of 64."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be float [B,3,H,W], got shape {list(images.shape)}")
    height, width = int(images.shape[2]), int(images.shape[3])
    if height % 64 or width % 64:
        raise ValueError(f"molded image sides must be multiples of 64, got {height}x{width}")
    return height, width
