"""Matterport's Mask R-CNN in PyTorch: config, model, weight import (and training)."""

from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.config import Config, ConfigError
from model.h5_weights import HEAD_LAYERS, WeightsError, load_h5_weights
from model.maskrcnn import InferenceOutputs, MaskRCNN

__all__ = [
    "Config", "ConfigError", "HEAD_LAYERS", "InferenceOutputs", "MaskRCNN", "WeightsError",
    "load_checkpoint", "load_h5_weights", "load_model", "save_checkpoint",
]
