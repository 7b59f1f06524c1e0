"""Shared fixtures: Matterport's reference tensors (when present) and small models.

The reference folder (../shared/reference/matterport beside the repository, or
$MRCNN_REFERENCE_DIR) holds tensors from running Matterport's own code; tests that
need it are skipped with the reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from model.config import Config

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("MRCNN_REFERENCE_DIR", REPO.parent / "shared" / "reference" / "matterport"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


class TinyConfig(Config):
    """A small, fast model for tests (ResNet50, 128x128 input, narrow heads)."""

    NAME = "tiny"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    POST_NMS_ROIS_INFERENCE = 200
    PRE_NMS_LIMIT = 1000
    DETECTION_MIN_CONFIDENCE = 0.0


# Per-layer scales in the spirit of the reference recipe (../shared/reference/matterport):
# they keep activations in a sane range, so scores are spread out instead of saturated.
_WEIGHT_SCALES = [(r"^conv1$", 1 / 64), (r"_branch2c$", 0.3), (r"^fpn_", 0.5), (r"^rpn_class_raw$", 0.7),
                  (r"^rpn_bbox_pred$", 0.5), (r"^mrcnn_class_logits$", 2.0), (r"^mrcnn_mask$", 3.0)]


def synthetic_weights(model, seed: int = 0):
    """Fill a MaskRCNN with deterministic random weights that behave like a trained model
    numerically: He-normal kernels scaled per layer, small biases, BN statistics near 1.
    (Default initialisation saturates the softmaxes to exactly 1.0, and with all scores
    tied, detections hang on float noise.)"""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.keras_layers().items():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                continue
            weight = module.weight
            fan_in = weight.shape[0] if isinstance(module, torch.nn.ConvTranspose2d) else weight[0].numel()
            scale = next((s for pattern, s in _WEIGHT_SCALES if re.search(pattern, name)), 1.0)
            weight.normal_(0, (2 / fan_in) ** 0.5 * scale, generator=generator)
            module.bias.normal_(0, 0.01, generator=generator)
    return model


@pytest.fixture(scope="session")
def weights_generator():
    """synthetic_weights, for tests that need a numerically well-behaved model."""
    return synthetic_weights


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return TinyConfig()


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    """A deterministic random-weight TinyConfig model in eval mode (do not mutate)."""
    from model.maskrcnn import MaskRCNN

    torch.manual_seed(0)
    return MaskRCNN(tiny_config).eval()


@pytest.fixture(scope="session")
def synthetic_model(tiny_config):
    """The tiny model with synthetic_weights(seed 0): spread-out scores, 100 detections
    on most images (DETECTION_MIN_CONFIDENCE 0). Do not mutate."""
    from model.maskrcnn import MaskRCNN

    return synthetic_weights(MaskRCNN(tiny_config).eval(), seed=0)


@pytest.fixture(scope="session")
def tiny_exports(synthetic_model, tmp_path_factory):
    """synthetic_model exported for both targets: {"onnx": batch 1, "trt": batch 2},
    class names BG, a, b."""
    from export.to_onnx import export_onnx

    folder = tmp_path_factory.mktemp("exports")
    paths = {}
    for target, batch in (("onnx", 1), ("trt", 2)):
        paths[target] = str(folder / f"tiny_{target}.onnx")
        export_onnx(synthetic_model, paths[target], target, batch, ["BG", "a", "b"])
    return paths


def write_clip(path, frames: int, height: int = 96, width: int = 128, seed: int = 0, fps: float = 10.0) -> str:
    """A short video of moving shapes (model.data.dataset.shapes_clip), written with OpenCV."""
    import cv2

    from model.data.dataset import shapes_clip

    fourcc = {".mp4": "mp4v", ".avi": "MJPG"}[os.path.splitext(str(path))[1]]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in shapes_clip(frames, height, width, seed):
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return str(path)


@pytest.fixture(scope="session")
def clip_writer():
    return write_clip


@pytest.fixture(scope="session")
def reference():
    """The reference folder's arrays, or a skip saying why there are none."""
    if not (REFERENCE_DIR / "outputs.npz").is_file():
        pytest.skip(f"Matterport reference tensors not found at {REFERENCE_DIR} "
                    f"(set MRCNN_REFERENCE_DIR); fidelity is then checked only on generated files")
    config = json.loads((REFERENCE_DIR / "config.json").read_text())
    return {
        "dir": REFERENCE_DIR,
        "config": Config.from_dict(config["config"]),
        "class_names": config["class_names"],
        "inputs": dict(np.load(REFERENCE_DIR / "inputs.npz")),
        "outputs": np.load(REFERENCE_DIR / "outputs.npz"),
    }


@pytest.fixture(scope="session")
def reference_weights_module(reference):
    """The reference folder's write_weights.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("write_weights", reference["dir"] / "write_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference_h5(reference_weights_module, tmp_path_factory) -> Path:
    """Matterport's synthetic weights written in the exact Keras layout (256 MB, temp)."""
    ww = reference_weights_module
    manifest = ww.load_manifest()
    values = ww.generate_all(manifest)
    assert ww.check(manifest, values) == 0, "recipe does not reproduce the manifest hashes"
    path = tmp_path_factory.mktemp("reference") / "mrcnn_shapes_r101_synthetic.h5"
    ww.write_h5(str(path), manifest, values)
    return path


@pytest.fixture(scope="session")
def reference_model(reference, reference_h5):
    from model.maskrcnn import MaskRCNN
    from model.weights.h5_weights import load_h5_weights

    model = MaskRCNN(reference["config"]).eval()
    load_h5_weights(model, str(reference_h5))
    return model


# ---------------------------------------------------------------- Keras .h5 files
# A writer for Keras-layout .h5 files, so the importer is tested without the reference
# folder: the layout is the one tf_keras ``save_weights`` produces (root layer_names,
# one group per layer with weight_names, the RPN nested in ``rpn_model``).

RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")


def keras_arrays(module):
    """(kind, array in Keras layout) for one torch module: the importer's inverse."""
    if isinstance(module, nn.BatchNorm2d):
        return [("gamma", module.weight), ("beta", module.bias),
                ("moving_mean", module.running_mean), ("moving_variance", module.running_var)]
    kernel = module.weight.detach().numpy()
    kernel = kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T
    return [("kernel", kernel), ("bias", module.bias)]


def write_keras_h5(model, path, skip=(), rename=None):
    """Write ``model``'s weights as a Matterport Keras file (layers in ``skip`` left out,
    ``rename`` maps layer names, e.g. to fake another backbone)."""
    rename = rename or {}
    groups = {}
    for layer, module in model.keras_layers().items():
        if layer in skip:
            continue
        name = rename.get(layer, layer)
        owner = "rpn_model" if layer in RPN_LAYERS else name
        for kind, value in keras_arrays(module):
            value = value.detach().numpy() if hasattr(value, "detach") else value
            groups.setdefault(owner, []).append((f"{name}/{kind}:0", np.asarray(value, np.float32)))
    layer_names = ["input_image", "zero_padding2d"] + list(groups) + ["activation_1"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.21.0"
        for layer in sorted(layer_names):
            group = f.create_group(layer)
            weights = groups.get(layer, [])
            group.attrs["weight_names"] = [w.encode() for w, _ in weights] if weights else np.zeros(0)
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)
        f.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(0)
    return path


@pytest.fixture(scope="session")
def keras_h5_writer():
    return write_keras_h5
