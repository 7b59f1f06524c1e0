"""What a deployed model needs to know about itself, stored in the ONNX metadata (and
copied into the metadata file beside a TensorRT engine): class names, how to mold
images, the fixed input size and batch, the export target, the project version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

from runtime.molding import MoldingSpec

PREFIX = "mrcnn."
INPUT_NAMES = ("images", "windows")
OUTPUT_NAMES = ("num_detections", "boxes", "scores", "class_ids", "masks")


class ModelFileError(ValueError):
    """A model file (ONNX, engine, metadata) that cannot be used; names the file."""


@dataclass(frozen=True)
class ModelInfo:
    class_names: List[str]
    molding: MoldingSpec
    input_size: Tuple[int, int]
    batch_size: int
    target: str
    version: str
    config: Dict[str, object] = field(default_factory=dict)

    def to_metadata(self) -> Dict[str, str]:
        return {
            PREFIX + "class_names": json.dumps(self.class_names),
            PREFIX + "molding": json.dumps(self.molding.__dict__),
            PREFIX + "input_size": f"{self.input_size[0]}x{self.input_size[1]}",
            PREFIX + "batch_size": str(self.batch_size),
            PREFIX + "target": self.target,
            PREFIX + "version": self.version,
            PREFIX + "config": json.dumps(self.config),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str) -> ModelInfo:
        try:
            molding = json.loads(metadata[PREFIX + "molding"])
            height, width = (int(v) for v in metadata[PREFIX + "input_size"].split("x"))
            return cls(
                class_names=list(json.loads(metadata[PREFIX + "class_names"])),
                molding=MoldingSpec(**{**molding, "mean_pixel": tuple(molding["mean_pixel"])}),
                input_size=(height, width),
                batch_size=int(metadata[PREFIX + "batch_size"]),
                target=metadata[PREFIX + "target"],
                version=metadata.get(PREFIX + "version", "unknown"),
                config=json.loads(metadata.get(PREFIX + "config", "{}")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{source}: missing or invalid model metadata ({exc}); export it with "
                                 f"python -m export.to_onnx") from exc
