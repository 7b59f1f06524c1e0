"""Matterport's Mask R-CNN in PyTorch: config, model, datasets, weight import (and training).

Layout: the network (config, backbone, fpn, rpn, heads, detection, maskrcnn, ops/) at
the top with the command-line entry points (train, detect, evaluate, convert_h5,
inspect); data/ (datasets and the training data pipeline), training/ (targets, losses,
the loop), weights/ (checkpoints, Keras .h5), inspection/ (stages, figures, weight
statistics).
"""

from model.config import Config, ConfigError
from model.data.coco import CocoDataset
from model.data.dataset import Dataset, ShapesDataset
from model.maskrcnn import InferenceOutputs, MaskRCNN
from model.weights.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.weights.h5_weights import HEAD_LAYERS, WeightsError, load_h5_weights

__all__ = [
    "CocoDataset", "Config", "ConfigError", "Dataset", "HEAD_LAYERS", "InferenceOutputs", "MaskRCNN", "ShapesDataset",
    "WeightsError", "load_checkpoint", "load_h5_weights", "load_model", "save_checkpoint",
]
