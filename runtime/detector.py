"""Detectors over exported models: the same molding, the same unmolding and the same
result type (:class:`runtime.Detections`) for every backend.

Shapes: B the model's fixed batch, H, W its fixed input size, K detection slots.

``open_model(path)`` picks the backend from the file: ``.onnx`` runs in ONNX Runtime
(:class:`OnnxDetector`), ``.engine`` / ``.plan`` in TensorRT
(:class:`runtime.trt_runtime.TrtDetector`).
"""

from __future__ import annotations

import mmap
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from runtime.image import bgr_to_rgb
from runtime.integrity import check_onnx_file
from runtime.masks import MASK_THRESHOLD
from runtime.model_info import INPUT_NAMES, OUTPUT_NAMES, ModelFileError, ModelInfo
from runtime.molding import MoldedBatch, mold_images
from runtime.postprocess import unmold_detections
from runtime.results import Detections
from runtime.timing import StageClock

ENGINE_SUFFIXES = (".engine", ".plan")
# what the short names of ``providers`` stand for, in the order "auto" prefers them
ORT_PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "cpu": "CPUExecutionProvider"}


class Detector:
    """Backend-independent part: subclasses set ``info`` and ``backend`` and implement ``infer``."""

    info: ModelInfo
    backend: str  # what runs the model, e.g. "onnxruntime 1.20.1 CPUExecutionProvider"

    def infer(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        """float32 images [B,3,H,W] and windows [B,4] -> the graph outputs by name."""
        raise NotImplementedError

    def detect(self, images: Sequence[np.ndarray], bgr: bool = False, score_threshold: Optional[float] = None,
               mask_threshold: float = MASK_THRESHOLD, masks: str = "full", paste: str = "fast",
               timings: Optional[Dict[str, float]] = None) -> List[Detections]:
        """Images of any size (see runtime.image for accepted formats) -> one Detections
        per image. Images are molded as in training and run in batches of the model's
        fixed batch size (the last batch is filled by repeating an image).

        bgr: the images are in OpenCV's BGR(A) order (RGB is the default, as Matterport).
        score_threshold: drop detections scoring below it (the model's
        DETECTION_MIN_CONFIDENCE already applied inside the graph). mask_threshold: where
        a mask probability counts as inside. masks: "full" (bool [h,w,N]) or "lazy"
        (runtime.masks.InstanceMasks, pasted into each box when read). paste: "fast" or
        "exact" (Matterport's bit for bit; see runtime.masks). timings: a dict to which the
        seconds spent molding ("mold"), in the model ("infer") and unmolding ("post") are added.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise TypeError("detect() takes a list of images; for one image call detect([image])")
        images = list(images)
        if not images:
            raise ValueError("detect() needs at least one image, got an empty list")
        results: List[Detections] = []
        for start in range(0, len(images), self.info.batch_size):
            molded = self.mold(images[start:start + self.info.batch_size], bgr, start, timings)
            results += self.detect_molded(molded, score_threshold, mask_threshold, masks, paste, timings)
        return results

    def mold(self, images: Sequence[np.ndarray], bgr: bool = False, first_index: int = 0,
             timings: Optional[Dict[str, float]] = None) -> MoldedBatch:
        """Up to batch-size images -> the model's input (the first half of ``detect``,
        separate so a pipeline can mold the next frame while the model runs)."""
        if len(images) > self.info.batch_size:
            raise ValueError(f"mold() takes at most the model's batch of {self.info.batch_size} images")
        clock = StageClock(timings)
        molded = mold_images([bgr_to_rgb(image) for image in images] if bgr else images, self.info.molding,
                             first_index)
        if molded.image_shape != tuple(self.info.input_size):
            raise ValueError(f"molded images are {molded.image_shape}, the model takes {self.info.input_size}")
        clock.lap("mold")
        return molded

    def detect_molded(self, molded: MoldedBatch, score_threshold: Optional[float] = None,
                      mask_threshold: float = MASK_THRESHOLD, masks: str = "full", paste: str = "fast",
                      timings: Optional[Dict[str, float]] = None) -> List[Detections]:
        """The second half of ``detect``: run the model on a molded batch and unmold (same options)."""
        clock = StageClock(timings)
        count, step = len(molded.original_shapes), self.info.batch_size
        fill = np.arange(step).clip(max=count - 1)  # repeat the last image to fill the batch
        outputs = self.infer(molded.images[fill], molded.windows[fill].astype(np.float32))
        clock.lap("infer")
        results = [unmold_detections(
            outputs["num_detections"][i], outputs["boxes"][i], outputs["class_ids"][i], outputs["scores"][i],
            outputs["masks"][i], tuple(molded.windows[i]), molded.image_shape, molded.original_shapes[i],
            mask_mode=masks, paste=paste, mask_threshold=mask_threshold, score_threshold=score_threshold)
            for i in range(count)]
        clock.lap("post")
        return results

    def close(self) -> None:
        """Release what the backend holds (GPU memory); the detector is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def check_io_names(path: str, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Refuse a model whose tensors are not this project's contract, naming what differs."""
    if sorted(inputs) != sorted(INPUT_NAMES):
        raise ModelFileError(f"{path}: inputs are {sorted(inputs)}, expected {list(INPUT_NAMES)}; "
                             f"export it with python -m export.to_onnx")
    if not set(OUTPUT_NAMES) <= set(outputs):
        raise ModelFileError(f"{path}: outputs {sorted(outputs)} lack some of {list(OUTPUT_NAMES)}")


def choose_providers(requested: Union[None, str, Sequence[str]], available: Sequence[str]) -> List[str]:
    """ONNX Runtime providers for ``requested``: None or "auto" (TensorRT, then CUDA, then
    CPU, as far as this onnxruntime offers them), a short name ("cpu", "cuda",
    "tensorrt", falling back to CPU for what the provider does not take), or a list of
    provider names as ONNX Runtime spells them."""
    if requested is None or requested == "auto":
        return [name for name in ORT_PROVIDERS.values() if name in available]
    if isinstance(requested, str):
        if requested not in ORT_PROVIDERS:
            raise ValueError(f"providers: expected auto, {', '.join(ORT_PROVIDERS)} or a list, got {requested!r}")
        wanted = ORT_PROVIDERS[requested]
        chosen = list(dict.fromkeys([wanted, ORT_PROVIDERS["cpu"]]))
    else:
        chosen = list(requested)
    missing = [name for name in chosen if name not in available]
    if missing:
        raise ValueError(f"this onnxruntime does not offer {missing} (it has {list(available)}); for GPUs install "
                         f"onnxruntime-gpu, or pass providers='cpu'")
    return chosen


class OnnxDetector(Detector):
    """An exported model in ONNX Runtime.

    providers: see :func:`choose_providers` (default "auto"); ``backend`` says which one
    runs. A ``--target trt`` export runs its TensorRT plugin nodes in ONNX Runtime's
    TensorRT provider, or else (CPU, CUDA) through the slow numpy references of
    runtime.plugin_reference, which check the graph but are not a way to deploy it.
    ``session_options``: onnxruntime SessionOptions to start from.
    """

    def __init__(self, path: str, providers: Union[None, str, Sequence[str]] = None, threads: int = 0,
                 session_options=None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelFileError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
        check_model_path(path)
        check_onnx_file(path)
        chosen = choose_providers(providers, ort.get_available_providers())
        model, options = path, session_options
        references = chosen[0] != ORT_PROVIDERS["tensorrt"] and _has_plugin_nodes(path)
        if references:
            from runtime.plugin_reference import plugin_session

            model, options = plugin_session(path)
        options = options or ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(model, options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from exc
        try:
            metadata = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as exc:  # a damaged file without a content hash to say so
            raise ModelFileError(f"{path}: unreadable model metadata ({exc})") from exc
        self.info = ModelInfo.from_metadata(metadata, path)
        check_io_names(path, [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        self.backend = f"onnxruntime {ort.__version__} {self.session.get_providers()[0]}" + (
            " (TensorRT plugins through slow numpy references)" if references else "")

    def infer(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = dict(zip(INPUT_NAMES, (images, windows)))
        return dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), feeds)))


def _has_plugin_nodes(path: str) -> bool:
    """Does the ONNX file hold TensorRT plugin nodes? The plugin domain's name appears
    in the file exactly when some node uses it (a byte search: no second parse of a
    model of hundreds of MB)."""
    from runtime.plugin_reference import PLUGIN_DOMAIN

    if os.path.getsize(path) == 0:
        raise ModelFileError(f"{path}: the file is empty")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(PLUGIN_DOMAIN.encode()) >= 0


def check_model_path(path: str) -> None:
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a directory, not a model file (.onnx, .engine or .plan)")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found")


def open_model(path: str, providers: Union[None, str, Sequence[str]] = None, threads: int = 0) -> Detector:
    """Open an exported model by its file: ``.onnx`` in ONNX Runtime (``providers``,
    ``threads``: see OnnxDetector), ``.engine`` / ``.plan`` in TensorRT (its
    ``<engine>.json`` is checked first). Every detector answers ``detect(images)`` with
    the same :class:`runtime.Detections` and says in ``backend`` what runs it."""
    path = os.fspath(path)
    check_model_path(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".onnx":
        return OnnxDetector(path, providers=providers, threads=threads)
    if suffix in ENGINE_SUFFIXES:
        from runtime.trt_runtime import TrtDetector

        return TrtDetector(path)
    raise ModelFileError(f"{path}: not a model file this runtime opens (expected .onnx, .engine or .plan)")
