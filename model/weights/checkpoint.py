"""PyTorch checkpoints of this project: weights plus the config that built them.

A checkpoint is a dict readable with ``torch.load(path, weights_only=True)``:
``format`` (CHECKPOINT_FORMAT), ``config`` (Config.to_dict()), ``class_names``
(list of str, "BG" first), ``state_dict``, ``source`` (where the weights came from),
for training checkpoints ``training`` (optimizer state, epoch, ...), and
``content_sha256``: a SHA-256 over everything else (every tensor's name, dtype, shape
and bytes), checked on load, so a damaged file is an error and not a different model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from model.config import Config
from model.weights.h5_weights import WeightsError
from runtime.files import atomic_path

CHECKPOINT_FORMAT = "mrcnn-edge/checkpoint-v1"
HASH_KEY = "content_sha256"

log = logging.getLogger(__name__)


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
    payload[HASH_KEY] = content_hash(payload)
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
        if "weights only" in str(exc).lower():
            raise WeightsError(f"{path}: holds objects other than plain weights, or is damaged; refusing to "
                               f"load it (only weights_only=True loading is allowed)") from exc
        raise WeightsError(f"{path}: damaged PyTorch checkpoint ({_first_line(exc)})") from exc
    except Exception as exc:  # a damaged archive can fail in the zip reader, the unpickler or the storages
        raise WeightsError(f"{path}: damaged PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path}: not a checkpoint of this project (expected format {CHECKPOINT_FORMAT!r}); "
            f"convert Keras weights with `python -m model.convert_h5 IN.h5 OUT.pt`")
    check_content_hash(payload, path)
    try:
        return Checkpoint(
            config=Config.from_dict(payload["config"]),
            state_dict=payload["state_dict"],
            class_names=[str(name) for name in payload["class_names"]],
            source=str(payload.get("source", "")),
            training=dict(payload.get("training") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise WeightsError(f"{path}: invalid checkpoint contents ({type(exc).__name__}: {exc})") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0][:300] if lines else ""


def content_hash(payload: Dict[str, Any]) -> str:
    """Hex SHA-256 of a checkpoint payload without its hash entry: nested dicts (keys in
    sorted order), lists, tensors (dtype, shape, raw bytes) and plain JSON values."""
    digest = hashlib.sha256()
    _update(digest, {k: v for k, v in payload.items() if k != HASH_KEY})
    return digest.hexdigest()


def _update(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {list(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key in sorted(value, key=str):
            digest.update(f"{key!r}:".encode())
            _update(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"list {len(value)};".encode())
        for item in value:
            _update(digest, item)
    else:
        digest.update(f"{json.dumps(value, sort_keys=True, default=repr)};".encode())


def check_content_hash(payload: Dict[str, Any], path: str) -> None:
    """WeightsError when the payload does not match the hash it was saved with (a
    warning when it has none: written before hashes were added)."""
    stored = payload.get(HASH_KEY)
    if stored is None:
        log.warning("%s carries no content hash (saved by an older version); its integrity is not checked", path)
        return
    if content_hash(payload) != stored:
        raise WeightsError(f"{path} is damaged: its weights do not match the SHA-256 they were saved with "
                           f"(a truncated copy, a disk or transfer error); copy it again or use another checkpoint")


def load_model(path: str, config: Optional[Config] = None, map_location: str = "cpu"):
    """Build a MaskRCNN from a ``.pt`` checkpoint (its own config unless ``config`` is
    given) and return ``(model, checkpoint)``, the model in eval mode."""
    from model.maskrcnn import MaskRCNN

    checkpoint = load_checkpoint(path, map_location)
    model = MaskRCNN(config or checkpoint.config)
    apply_state_dict(model, checkpoint.state_dict, path)
    return model.eval(), checkpoint


def apply_state_dict(model: torch.nn.Module, state_dict, path: str) -> None:
    """``model.load_state_dict(state_dict)``, with a WeightsError naming ``path`` when the
    weights do not fit (missing or unexpected names, shapes, values that are not tensors)."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise WeightsError(f"{path}: its state_dict is not a mapping of names to tensors")
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: weights do not fit the config: {str(exc)[:2000]}") from exc
