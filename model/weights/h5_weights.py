"""Import Matterport Keras ``.h5`` weight files (mask_rcnn_coco.h5, users' own models,
the Keras ImageNet ResNet50) into :class:`model.MaskRCNN`, through h5py only.

Layout read (Keras ``save_weights``): root attribute ``layer_names``; one group per
layer with attribute ``weight_names``; datasets such as ``conv1/kernel:0``. The RPN is
a nested model, group ``rpn_model`` holding ``rpn_conv_shared/kernel:0`` etc.
Conversions: Conv2D kernel (kh,kw,in,out) -> (out,in,kh,kw); Conv2DTranspose
(kh,kw,out,in) -> (in,out,kh,kw); Dense (in,out) -> (out,in); BN gamma, beta,
moving_mean, moving_variance -> weight, bias, running_mean, running_var.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

# Matterport's exclusion list for fine-tuning on another class count.
HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")

H5Weights = Dict[str, List[Tuple[str, np.ndarray]]]


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the layer."""


@dataclass
class H5Summary:
    """What a weights file says about the model that wrote it (None when absent)."""

    layers: List[str]
    num_classes: Optional[int]
    backbone: Optional[str]
    fc_layers_size: Optional[int]
    pyramid_size: Optional[int]
    anchors_per_location: Optional[int]


@dataclass
class LoadReport:
    """Keras layer names loaded, missing from the file (allowed), and unused in the file."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)


def read_h5(path: str) -> H5Weights:
    """Read a Keras weights file into {layer name: [(kind, float32 array), ...]}.

    kind is kernel, bias, gamma, beta, moving_mean or moving_variance.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path}: not a readable HDF5 file, so not Keras .h5 weights ({exc})") from exc
    with handle:
        try:
            return _read_layers(handle, path)
        except WeightsError:
            raise
        except Exception as exc:  # h5py reports damage as KeyError, OSError, ValueError, RuntimeError, TypeError
            raise WeightsError(f"{path}: damaged or truncated weights file ({type(exc).__name__}: {exc})") from exc


def _read_layers(handle, path: str) -> H5Weights:
    root = handle
    if "layer_names" not in root.attrs and "model_weights" in root:
        root = root["model_weights"]  # a full-model save, not save_weights
    if "layer_names" not in root.attrs:
        raise WeightsError(f"{path}: HDF5 file without a 'layer_names' attribute, not Keras weights")
    weights: H5Weights = OrderedDict()
    for layer in _strings(root.attrs["layer_names"]):
        group = root[layer]
        names = _strings(group.attrs.get("weight_names", []))
        prefixes = {n.rsplit("/", 1)[0].split("/")[-1] for n in names}
        for name in names:  # nested models (rpn_model): key by sub-layer name
            owner = name.rsplit("/", 1)[0].split("/")[-1] if len(prefixes) > 1 else layer
            kind = name.rsplit("/", 1)[-1].split(":")[0]
            weights.setdefault(owner, []).append((kind, np.asarray(group[name], np.float32)))
    return weights


def _strings(values: Iterable) -> List[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def summarize(weights: H5Weights) -> H5Summary:
    """Infer NUM_CLASSES, backbone depth and head sizes from the weight shapes."""
    def shape(layer, kind="kernel"):
        return next((a.shape for k, a in weights.get(layer, []) if k == kind), None)

    logits, fc, c5p5, rpn_class = (shape("mrcnn_class_logits"), shape("mrcnn_class_conv1"),
                                   shape("fpn_c5p5"), shape("rpn_class_raw"))
    backbone = ("resnet101" if "res4w_branch2a" in weights
                else "resnet50" if "res4f_branch2a" in weights else None)
    return H5Summary(
        layers=list(weights),
        num_classes=logits[-1] if logits else None,
        backbone=backbone,
        fc_layers_size=fc[-1] if fc else None,
        pyramid_size=c5p5[-1] if c5p5 else None,
        anchors_per_location=rpn_class[-1] // 2 if rpn_class else None,
    )


def _convert(module: nn.Module, kind: str, array: np.ndarray) -> Tuple[str, np.ndarray]:
    """Map one Keras weight onto (torch parameter name, array in torch layout)."""
    if isinstance(module, nn.BatchNorm2d):
        names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                 "moving_variance": "running_var"}
        return names[kind], array
    if kind == "bias":
        return "bias", array
    if kind != "kernel":
        raise KeyError(kind)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):  # [kh,kw,in,out] -> [out,in,kh,kw]
        return "weight", array.transpose(3, 2, 0, 1) if array.ndim == 4 else array
    return "weight", array.T if array.ndim == 2 else array  # nn.Linear: [in,out] -> [out,in]


def convert_weights(
    model: nn.Module, weights: H5Weights, path: str, exclude: Iterable[str] = (), strict: bool = True,
    command: Optional[str] = None,
) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """Check every layer and build a (partial) state dict, without touching the model.

    Raises WeightsError naming the layer for unknown weight kinds, shape mismatches and,
    when ``strict``, for model layers the file lacks. ``command``: the CLI that asked
    (its hints then name what that command can do, not Python arguments).
    """
    layers = model.keras_layers()
    module_names = {module: name for name, module in model.named_modules()}
    exclude = set(exclude)
    report = LoadReport(unused=[n for n in weights if n not in layers and n not in exclude])
    state: Dict[str, torch.Tensor] = {}
    for layer, module in layers.items():
        if layer in exclude:
            continue
        if layer not in weights:
            report.missing.append(layer)
            continue
        expected = {k for k, _ in module.named_parameters(recurse=False)} | {
            k for k, _ in module.named_buffers(recurse=False) if k.startswith("running_")}
        found = set()
        for kind, array in weights[layer]:
            try:
                name, value = _convert(module, kind, array)
            except KeyError:
                raise WeightsError(f"{path}: layer {layer}: unexpected weight {kind!r}") from None
            target = getattr(module, name)
            if tuple(value.shape) != tuple(target.shape):
                raise WeightsError(_mismatch_message(path, layer, kind, array.shape, value.shape,
                                                     target.shape, command))
            state[f"{module_names[module]}.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
            found.add(name)
        if found != expected:
            raise WeightsError(f"{path}: layer {layer}: has weights {sorted(found)}, "
                               f"expected {sorted(expected)}")
        report.loaded.append(layer)
    if strict and report.missing:
        shown = ", ".join(report.missing[:8]) + (" ..." if len(report.missing) > 8 else "")
        hint = (f"{command} converts complete Mask R-CNN files only; a backbone-only file (the ImageNet "
                f"ResNet50) is used with python -m model.train --init imagenet --imagenet-weights {path}"
                if command else "Pass exclude=[...] for layers to leave untouched, or strict=False to load only "
                                "the layers present (e.g. ImageNet).")
        raise WeightsError(f"{path}: missing {len(report.missing)} layers of the model: {shown}. "
                           f"{_backbone_hint(weights, layers)}{hint}")
    return state, report


def _mismatch_message(path, layer, kind, file_shape, converted, expected, command: Optional[str] = None) -> str:
    hint = ""
    if layer in HEAD_LAYERS or layer.startswith("mrcnn_mask"):
        hint = (" The file was trained with another NUM_CLASSES; set NUM_CLASSES to match"
                + (f" (--config of {command})." if command else
                   f", or pass exclude={list(HEAD_LAYERS)} to fine-tune new heads."))
    return (f"{path}: layer {layer}: {kind} has shape {tuple(file_shape)} in the file "
            f"({tuple(converted)} in PyTorch layout), the model expects {tuple(expected)}.{hint}")


def _backbone_hint(weights: H5Weights, layers) -> str:
    file_backbone = summarize(weights).backbone
    model_backbone = "resnet101" if "res4w_branch2a" in layers else "resnet50"
    if file_backbone and file_backbone != model_backbone:
        return f"The file holds a {file_backbone} backbone, the config says {model_backbone}. "
    return ""


def load_h5_weights(
    model: nn.Module, path: str, exclude: Iterable[str] = (), strict: bool = True,
) -> LoadReport:
    """Load a Keras .h5 file into ``model`` by layer name (Matterport's
    ``load_weights(path, by_name=True, exclude=...)``). All-or-nothing: on any error
    the model is unchanged."""
    path = os.fspath(path)
    state, report = convert_weights(model, read_h5(path), path, exclude, strict)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in state:
                tensor.copy_(state[name])
    return report
