"""Lean, torch-free inference runtime: open an exported model, detect, draw, run video.

Nothing here imports torch or ``model``; a Jetson needs only numpy (Pillow to read image
files, OpenCV for video and drawing) besides the inference backend.

    from runtime import open_model, load_image
    detector = open_model("shapes.onnx")          # or model.engine (TensorRT)
    result = detector.detect([load_image("a.png")])[0]
"""

from runtime.detector import Detector, OnnxDetector, open_model
from runtime.image import ImageError, load_image, to_rgb_uint8
from runtime.masks import InstanceMasks
from runtime.model_info import ModelFileError, ModelInfo
from runtime.molding import MoldedBatch, MoldingSpec, mold_images, resize_image
from runtime.postprocess import unmold_detections
from runtime.results import Detections

__all__ = [
    "Detections",
    "Detector",
    "ImageError",
    "InstanceMasks",
    "ModelFileError",
    "ModelInfo",
    "MoldedBatch",
    "MoldingSpec",
    "OnnxDetector",
    "load_image",
    "mold_images",
    "open_model",
    "resize_image",
    "to_rgb_uint8",
    "unmold_detections",
]
