"""Detectors over exported models: the same molding, the same unmolding and the same
result type (:class:`runtime.Detections`) for every backend.

Shapes: B the model's fixed batch, H, W its fixed input size, K detection slots.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from runtime.model_info import INPUT_NAMES, OUTPUT_NAMES, ModelFileError, ModelInfo
from runtime.molding import mold_images
from runtime.postprocess import unmold_detections
from runtime.results import Detections


class Detector:
    """Backend-independent part: subclasses implement ``infer``."""

    info: ModelInfo

    def infer(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        """float32 images [B,3,H,W] and windows [B,4] -> the graph outputs by name."""
        raise NotImplementedError

    def detect(self, images: Sequence[np.ndarray]) -> List[Detections]:
        """RGB images of any size (see runtime.image for accepted formats) -> one
        Detections per image. Images are molded as in training and run in batches of
        the model's fixed batch size (the last batch is filled by repeating an image)."""
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise TypeError("detect() takes a list of images; for one image call detect([image])")
        images = list(images)
        if not images:
            raise ValueError("detect() needs at least one image, got an empty list")
        step = self.info.batch_size
        results: List[Detections] = []
        for start in range(0, len(images), step):
            molded = mold_images(images[start:start + step], self.info.molding, start)
            if molded.image_shape != tuple(self.info.input_size):
                raise ValueError(f"molded images are {molded.image_shape}, the model takes {self.info.input_size}")
            count = len(molded.original_shapes)
            fill = np.arange(step).clip(max=count - 1)  # repeat the last image to fill the batch
            outputs = self.infer(molded.images[fill], molded.windows[fill].astype(np.float32))
            for i in range(count):
                results.append(unmold_detections(
                    outputs["num_detections"][i], outputs["boxes"][i], outputs["class_ids"][i],
                    outputs["scores"][i], outputs["masks"][i], tuple(molded.windows[i]),
                    molded.image_shape, molded.original_shapes[i]))
        return results


class OnnxDetector(Detector):
    """An exported model in ONNX Runtime (CPU by default; pass providers for GPU).

    ``session_options``: onnxruntime SessionOptions to start from (e.g. with
    onnxruntime-extensions registered, for graphs with TensorRT plugin nodes).
    """

    def __init__(self, path: str, providers: Optional[Sequence[str]] = None, threads: int = 0,
                 session_options=None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelFileError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
        if not os.path.isfile(path):
            raise ModelFileError(f"{path}: ONNX model not found")
        options = session_options or ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from exc
        self.info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        names = {o.name for o in self.session.get_outputs()}
        if not set(OUTPUT_NAMES) <= names:
            raise ModelFileError(f"{path}: outputs {sorted(names)} lack some of {list(OUTPUT_NAMES)}")

    def infer(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = dict(zip(INPUT_NAMES, (images, windows)))
        return dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), feeds)))
