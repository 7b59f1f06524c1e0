"""Mask R-CNN configuration with Matterport's attribute names, defaults and derived values.

Use it the Matterport way, by subclassing with class attributes::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 4
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128

    config = ShapesConfig()              # or ShapesConfig(DETECTION_MIN_CONFIDENCE=0.9)

``Config`` is a dataclass: every subclass is turned into one automatically, so the
class attributes become the new defaults, lists become tuples (hashable, JSON
friendly) and instances can be compared, copied (``dataclasses.replace``) and saved
(``to_dict`` / ``from_dict``). Invalid values raise :class:`ConfigError` naming every
problem at construction (call :meth:`validate` again after editing attributes).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from runtime.molding import RESIZE_MODES, MoldingSpec

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
              "mrcnn_mask_loss")
BACKBONES = ("resnet50", "resnet101")
OPTIMIZERS = ("SGD", "Adam")
# Derived (read-only) values and Matterport attributes this port does not use; they are
# accepted by from_dict so a Matterport config dump loads.
_DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")
_IGNORED = ("COMPUTE_BACKBONE_SHAPE", "save_best_only")


class ConfigError(ValueError):
    """A configuration value that the model cannot use."""


def _freeze(value: Any) -> Any:
    """Lists and numpy arrays -> tuples (recursively); everything else unchanged."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Config:
    """Base configuration; the values and their meaning are Matterport's."""

    NAME: Optional[str] = None
    GPU_COUNT: int = 1
    IMAGES_PER_GPU: int = 2
    STEPS_PER_EPOCH: int = 1000
    VALIDATION_STEPS: int = 50
    BACKBONE: str = "resnet101"
    BACKBONE_STRIDES: Tuple[int, ...] = (4, 8, 16, 32, 64)
    FPN_CLASSIF_FC_LAYERS_SIZE: int = 1024
    TOP_DOWN_PYRAMID_SIZE: int = 256
    NUM_CLASSES: int = 1
    RPN_ANCHOR_SCALES: Tuple[int, ...] = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS: Tuple[float, ...] = (0.5, 1, 2)
    RPN_ANCHOR_STRIDE: int = 1
    RPN_NMS_THRESHOLD: float = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE: int = 256
    PRE_NMS_LIMIT: int = 6000
    POST_NMS_ROIS_TRAINING: int = 2000
    POST_NMS_ROIS_INFERENCE: int = 1000
    USE_MINI_MASK: bool = True
    MINI_MASK_SHAPE: Tuple[int, int] = (56, 56)
    IMAGE_RESIZE_MODE: str = "square"
    IMAGE_MIN_DIM: int = 800
    IMAGE_MAX_DIM: int = 1024
    IMAGE_MIN_SCALE: float = 0
    IMAGE_CHANNEL_COUNT: int = 3
    MEAN_PIXEL: Tuple[float, float, float] = (123.7, 116.8, 103.9)
    TRAIN_ROIS_PER_IMAGE: int = 200
    ROI_POSITIVE_RATIO: float = 0.33
    POOL_SIZE: int = 7
    MASK_POOL_SIZE: int = 14
    MASK_SHAPE: Tuple[int, int] = (28, 28)
    MAX_GT_INSTANCES: int = 100
    RPN_BBOX_STD_DEV: Tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    BBOX_STD_DEV: Tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    DETECTION_MAX_INSTANCES: int = 100
    DETECTION_MIN_CONFIDENCE: float = 0.7
    DETECTION_NMS_THRESHOLD: float = 0.3
    LEARNING_RATE: float = 0.001
    LEARNING_MOMENTUM: float = 0.9
    WEIGHT_DECAY: float = 0.0001
    LOSS_WEIGHTS: Dict[str, float] = field(
        default_factory=lambda: {name: 1.0 for name in LOSS_NAMES})
    USE_RPN_ROIS: bool = True
    TRAIN_BN: Optional[bool] = False
    # Not in Matterport. With TRAIN_BN True/None, Batch Renormalization (Ioffe, 2017):
    # training normalises with the moving statistics (as inference does) while gradients
    # flow through the batch statistics, so small batches leave no train/inference gap.
    # The moving statistics follow the batches with this (Keras-style) momentum.
    BATCH_RENORM: bool = False
    BATCH_RENORM_MOMENTUM: float = 0.9
    GRADIENT_CLIP_NORM: float = 5.0
    # Not in Matterport (SGD with LEARNING_MOMENTUM). "Adam": Adam with beta1 =
    # LEARNING_MOMENTUM and Matterport's L2 term in the gradient (what Keras does with
    # kernel regularizers); from scratch it learns masks several times sooner (README).
    OPTIMIZER: str = "SGD"

    def __init_subclass__(cls, **kwargs):
        """Make a Matterport-style subclass a dataclass whose defaults are its class
        attributes (``NAME = "shapes"`` overrides the inherited field's default)."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        annotations = dict(own.get("__annotations__", {}))
        resolved = _base_types()  # real types: string annotations would need cls's module in sys.modules
        for f in dataclasses.fields(cls):
            if f.name in own and f.name not in annotations:
                annotations[f.name] = resolved.get(f.name, f.type)
        for name in annotations:
            if name not in own or callable(own[name]) or isinstance(own[name], property):
                continue
            value = _freeze(own[name])
            if isinstance(value, dict):
                value = field(default_factory=functools.partial(dict, value))
            setattr(cls, name, value)
        cls.__annotations__ = annotations
        dataclass(cls)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, dict(value) if isinstance(value, Mapping) else _freeze(value))
        self.validate()

    # ------------------------------------------------------------------ derived values
    @property
    def BATCH_SIZE(self) -> int:  # noqa: N802 (Matterport's name)
        return self.IMAGES_PER_GPU * self.GPU_COUNT

    @property
    def IMAGE_SHAPE(self) -> Tuple[int, int, int]:  # noqa: N802
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        return (side, side, self.IMAGE_CHANNEL_COUNT)

    @property
    def IMAGE_META_SIZE(self) -> int:  # noqa: N802
        return 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    def molding_spec(self) -> MoldingSpec:
        """The torch-free molding parameters (shared with the runtime)."""
        return MoldingSpec(
            min_dim=self.IMAGE_MIN_DIM,
            max_dim=self.IMAGE_MAX_DIM,
            min_scale=self.IMAGE_MIN_SCALE,
            mode=self.IMAGE_RESIZE_MODE,
            mean_pixel=tuple(float(v) for v in self.MEAN_PIXEL),
        )

    # ---------------------------------------------------------------------- validation
    def validate(self) -> Config:
        """Raise ConfigError listing every invalid value; return self when all is well."""
        problems = list(_problems(self))
        if problems:
            name = type(self).__name__
            raise ConfigError(f"invalid {name}:\n  - " + "\n  - ".join(problems))
        return self

    # -------------------------------------------------------------- display and storage
    def to_dict(self) -> Dict[str, Any]:
        """All fields as plain Python values (lists for tuples), JSON-serialisable."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, tuple) else v
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """Build a config from ``to_dict`` output or a Matterport config dump.

        Derived values (BATCH_SIZE, IMAGE_SHAPE, IMAGE_META_SIZE) are checked against
        the result; unknown keys are an error.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names - set(_DERIVED) - set(_IGNORED))
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        config = cls(**{k: v for k, v in values.items() if k in names})
        for key in _DERIVED:
            if key in values and _freeze(values[key]) != _freeze(getattr(config, key)):
                raise ConfigError(
                    f"{key}={values[key]!r} does not follow from the other values "
                    f"(expected {getattr(config, key)!r})")
        return config

    def format(self) -> str:
        rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]
        rows += [(name, getattr(self, name)) for name in _DERIVED]
        return "\n".join(f"{name:30} {value}" for name, value in sorted(rows))

    def display(self) -> None:
        """Print every value, as Matterport's ``Config.display``."""
        print("\nConfigurations:\n" + self.format() + "\n")


def with_mask_pool_size(config: Config, pool_size: int) -> Config:
    """``config`` with MASK_POOL_SIZE ``pool_size`` and MASK_SHAPE (2p, 2p): the pair
    changes together (the mask head upsamples its RoI grid by 2)."""
    return dataclasses.replace(config, MASK_POOL_SIZE=pool_size, MASK_SHAPE=(2 * pool_size, 2 * pool_size))


@functools.lru_cache(maxsize=1)
def _base_types() -> Dict[str, Any]:
    return typing.get_type_hints(Config)


def _problems(c: Config):
    """Yield a message for each invalid value of ``c``."""
    def positive_int(name):
        value = getattr(c, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            yield f"{name} must be a positive integer, got {value!r}"

    def fraction(name, low_open=False):
        value = getattr(c, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (0 < value <= 1 if low_open else 0 <= value <= 1):
            yield f"{name} must lie in {'(0' if low_open else '[0'}, 1], got {value!r}"

    for name in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH", "VALIDATION_STEPS",
                 "NUM_CLASSES", "RPN_ANCHOR_STRIDE", "RPN_TRAIN_ANCHORS_PER_IMAGE",
                 "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
                 "TRAIN_ROIS_PER_IMAGE", "POOL_SIZE", "MASK_POOL_SIZE", "MAX_GT_INSTANCES",
                 "DETECTION_MAX_INSTANCES", "TOP_DOWN_PYRAMID_SIZE",
                 "FPN_CLASSIF_FC_LAYERS_SIZE"):
        yield from positive_int(name)
    for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE"):
        yield from fraction(name)
    yield from fraction("ROI_POSITIVE_RATIO", low_open=True)

    if c.BACKBONE not in BACKBONES:
        yield f"BACKBONE must be one of {BACKBONES}, got {c.BACKBONE!r}"
    if tuple(c.BACKBONE_STRIDES) != (4, 8, 16, 32, 64):
        yield f"BACKBONE_STRIDES must be (4, 8, 16, 32, 64) for ResNet-FPN, got {c.BACKBONE_STRIDES}"
    if len(c.RPN_ANCHOR_SCALES) != 5 or min(c.RPN_ANCHOR_SCALES, default=0) <= 0:
        yield f"RPN_ANCHOR_SCALES must be 5 positive sizes (one per level P2..P6), got {c.RPN_ANCHOR_SCALES}"
    if not c.RPN_ANCHOR_RATIOS or min(c.RPN_ANCHOR_RATIOS) <= 0:
        yield f"RPN_ANCHOR_RATIOS must be positive numbers, got {c.RPN_ANCHOR_RATIOS}"
    yield from _image_problems(c)
    if tuple(c.MASK_SHAPE) != (2 * c.MASK_POOL_SIZE, 2 * c.MASK_POOL_SIZE):
        yield (f"MASK_SHAPE must be twice MASK_POOL_SIZE (the mask head upsamples by 2), "
               f"got {c.MASK_SHAPE} for MASK_POOL_SIZE {c.MASK_POOL_SIZE}")
    if len(c.MINI_MASK_SHAPE) != 2 or min(c.MINI_MASK_SHAPE) < 1:
        yield f"MINI_MASK_SHAPE must be (height, width), got {c.MINI_MASK_SHAPE}"
    for name in ("RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
        value = getattr(c, name)
        if len(value) != 4 or min(value) <= 0:
            yield f"{name} must be 4 positive numbers, got {value}"
    unknown = sorted(set(c.LOSS_WEIGHTS) - set(LOSS_NAMES))
    if unknown:
        yield f"LOSS_WEIGHTS has unknown losses {unknown}; known: {list(LOSS_NAMES)}"
    if c.OPTIMIZER not in OPTIMIZERS:
        yield f"OPTIMIZER must be one of {OPTIMIZERS}, got {c.OPTIMIZER!r}"
    if c.TRAIN_BN not in (True, False, None):
        yield f"TRAIN_BN must be True, False or None, got {c.TRAIN_BN!r}"
    if c.BATCH_RENORM and c.TRAIN_BN is False:
        yield "BATCH_RENORM needs TRAIN_BN True or None (with TRAIN_BN False, BN is frozen)"
    if not 0 <= c.BATCH_RENORM_MOMENTUM < 1:
        yield f"BATCH_RENORM_MOMENTUM must be in [0, 1), got {c.BATCH_RENORM_MOMENTUM}"
    if c.DETECTION_MAX_INSTANCES > c.POST_NMS_ROIS_INFERENCE:
        yield (f"DETECTION_MAX_INSTANCES ({c.DETECTION_MAX_INSTANCES}) cannot exceed "
               f"POST_NMS_ROIS_INFERENCE ({c.POST_NMS_ROIS_INFERENCE})")


def _image_problems(c: Config):
    if c.IMAGE_RESIZE_MODE not in RESIZE_MODES:
        yield f"IMAGE_RESIZE_MODE must be one of {RESIZE_MODES}, got {c.IMAGE_RESIZE_MODE!r}"
        return
    if c.IMAGE_CHANNEL_COUNT != 3 or len(c.MEAN_PIXEL) != 3:
        yield (f"only RGB input is supported: IMAGE_CHANNEL_COUNT must be 3 and MEAN_PIXEL "
               f"3 values, got {c.IMAGE_CHANNEL_COUNT} and {c.MEAN_PIXEL}")
    checked = {"square": ("IMAGE_MAX_DIM",), "crop": ("IMAGE_MIN_DIM",),
               "pad64": ("IMAGE_MIN_DIM",), "none": ()}[c.IMAGE_RESIZE_MODE]
    for name in checked:
        value = getattr(c, name)
        if not isinstance(value, int) or value < 64 or value % 64:
            yield (f"{name} must be a multiple of 64 (the backbone halves the image 6 "
                   f"times), got {value!r}")
    if c.IMAGE_MIN_SCALE and c.IMAGE_MIN_SCALE < 0:
        yield f"IMAGE_MIN_SCALE must be >= 0, got {c.IMAGE_MIN_SCALE}"
