"""Ready-made configurations, as in Matterport's samples."""

from __future__ import annotations

from model.config import Config


class ShapesConfig(Config):
    """The synthetic shapes set (Matterport's samples/shapes), small enough to train on a
    CPU from scratch: ResNet50, 128x128 images. BN stays frozen (Matterport's default);
    from scratch its statistics are calibrated on the data first (--init none), or BN
    trains with batch renormalization (--batch-renorm, what benchmarks/train_shapes.py uses)."""

    NAME = "shapes"
    BACKBONE = "resnet50"
    NUM_CLASSES = 4  # BG, square, circle, triangle
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 500
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5
    LEARNING_RATE = 0.01


class CocoConfig(Config):
    """MS COCO (Matterport's samples/coco): 80 classes plus background."""

    NAME = "coco"
    NUM_CLASSES = 81
    IMAGES_PER_GPU = 2
