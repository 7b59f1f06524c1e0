"""PyTorch checkpoints of this project: weights plus the config that built them.

A checkpoint is a dict readable with ``torch.load(path, weights_only=True)``:
``format`` (CHECKPOINT_FORMAT), ``config`` (Config.to_dict()), ``class_names``
(list of str, "BG" first), ``state_dict``, ``source`` (where the weights came from)
and, for training checkpoints, ``training`` (optimizer state, epoch, ...).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from model.config import Config
from model.h5_weights import WeightsError
from runtime.files import atomic_path

CHECKPOINT_FORMAT = "mrcnn-edge/checkpoint-v1"


@dataclass
class Checkpoint:
    config: Config
    state_dict: Dict[str, torch.Tensor]
    class_names: List[str]
    source: str = ""
    training: Dict[str, Any] = field(default_factory=dict)


def default_class_names(num_classes: int) -> List[str]:
    return ["BG"] + [f"class_{i}" for i in range(1, num_classes)]


def save_checkpoint(path: str, model: torch.nn.Module, class_names: Optional[List[str]] = None,
                    source: str = "", training: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` (a MaskRCNN) and its config to ``path`` atomically."""
    config = model.config
    names = list(class_names) if class_names else default_class_names(config.NUM_CLASSES)
    if len(names) != config.NUM_CLASSES:
        raise ValueError(f"{len(names)} class names for NUM_CLASSES={config.NUM_CLASSES}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "class_names": names,
        "state_dict": model.state_dict(),
        "source": source,
        "training": training or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str, map_location: str = "cpu") -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); WeightsError names the file
    and the problem for missing, corrupt or foreign files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: checkpoint file not found")
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not a PyTorch checkpoint (torch.save's zip format expected; "
                           f"a truncated download looks like this too)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"{path}: holds objects other than plain weights; refusing to load "
                           f"it (only weights_only=True loading is allowed)") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path}: damaged PyTorch checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path}: not a checkpoint of this project (expected format {CHECKPOINT_FORMAT!r}); "
            f"convert Keras weights with `python -m model.convert_h5 IN.h5 OUT.pt`")
    return Checkpoint(
        config=Config.from_dict(payload["config"]),
        state_dict=payload["state_dict"],
        class_names=list(payload["class_names"]),
        source=payload.get("source", ""),
        training=payload.get("training", {}),
    )


def load_model(path: str, config: Optional[Config] = None, map_location: str = "cpu"):
    """Build a MaskRCNN from a ``.pt`` checkpoint (its own config unless ``config`` is
    given) and return ``(model, checkpoint)``, the model in eval mode."""
    from model.maskrcnn import MaskRCNN

    checkpoint = load_checkpoint(path, map_location)
    model = MaskRCNN(config or checkpoint.config)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the config: {exc}") from exc
    return model.eval(), checkpoint
