"""Weight statistics of a checkpoint, a Keras .h5 file or an exported ONNX (Matterport's
inspect_weights notebook): one row per tensor with its range, mean, spread and flags
for the anomalies that training or conversion leave behind.

Flags: ``NaN/Inf`` (any non-finite value), ``all zero``, ``near constant`` (spread under
1e-7 of the magnitude, more than one value), ``exploding`` (a value beyond 1e3 in
magnitude; for BatchNorm variances, a standard deviation beyond 1e3: the first BN after
conv1 sees pixel values, variances of 1e4 are normal there). For a Q/DQ ONNX the INT8
weights and their scales and zero points are listed too (``kind``); zero points of 0
and the integer ranges of quantized tensors are what symmetric INT8 makes, not flagged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

import numpy as np

EXPLODING = 1e3
SAMPLE = 10000  # values kept per tensor for histograms


@dataclass
class WeightStat:
    name: str
    kind: str  # "weight", or for Q/DQ models "int8 weight", "scale", "zero point"
    shape: Tuple[int, ...]
    dtype: str
    size: int
    min: float
    max: float
    mean: float
    std: float
    flags: List[str] = field(default_factory=list)
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # float64 [<= SAMPLE]


def tensor_stat(name: str, values: np.ndarray, kind: str = "weight") -> WeightStat:
    """Statistics and flags of one tensor (any numeric dtype)."""
    array = np.asarray(values)
    flat = array.astype(np.float64).ravel()  # [size]
    finite = flat[np.isfinite(flat)]
    flags = []
    if finite.size < flat.size:
        flags.append("NaN/Inf")
    if flat.size and not np.any(flat):
        flags.append("all zero")
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (float("nan"), float("nan"))
    mean, std = (float(finite.mean()), float(finite.std())) if finite.size else (float("nan"), float("nan"))
    if flat.size > 1 and "all zero" not in flags and finite.size and std <= 1e-7 * max(1.0, abs(mean)):
        flags.append("near constant")
    largest = max(abs(lo), abs(hi)) if finite.size else 0.0
    if name.endswith(("running_var", "moving_variance")):
        largest = largest ** 0.5  # compare the standard deviation
    if largest > EXPLODING and kind not in ("int8 weight", "zero point"):  # integers in units of their scale
        flags.append("exploding")
    if kind == "zero point":  # symmetric INT8 has zero points of 0 by design
        flags = [f for f in flags if f not in ("all zero", "near constant")]
    step = max(1, flat.size // SAMPLE)
    return WeightStat(name, kind, tuple(array.shape), str(array.dtype), int(flat.size), lo, hi, mean, std, flags,
                      flat[::step][:SAMPLE])


def weight_stats(path: str) -> List[WeightStat]:
    """Rows for every tensor of ``path``: .pt (this project's checkpoints), .h5 (Keras,
    Matterport's layout) or .onnx (initializers). Errors name the file."""
    suffix = os.path.splitext(path)[1].lower()
    readers = {".pt": _checkpoint_tensors, ".pth": _checkpoint_tensors, ".h5": _h5_tensors, ".onnx": _onnx_tensors}
    if suffix not in readers:
        raise ValueError(f"{path}: expected a .pt, .h5 or .onnx file")
    return [tensor_stat(name, values, kind) for name, values, kind in readers[suffix](path)]


def _checkpoint_tensors(path: str) -> Iterable[Tuple[str, np.ndarray, str]]:
    from model.weights.checkpoint import load_checkpoint

    for name, tensor in load_checkpoint(path).state_dict.items():
        if tensor.is_floating_point():
            yield name, tensor.float().numpy(), "weight"


def _h5_tensors(path: str) -> Iterable[Tuple[str, np.ndarray, str]]:
    from model.weights.h5_weights import read_h5

    for layer, weights in read_h5(path).items():
        for kind, array in weights:
            yield f"{layer}/{kind}", array, "weight"


def _onnx_tensors(path: str) -> Iterable[Tuple[str, np.ndarray, str]]:
    from onnx import numpy_helper

    from calibration.graph import WEIGHTED, load_onnx

    graph = load_onnx(path).graph
    kinds: Dict[str, str] = {}  # the weights and biases of the network's layers, and Q/DQ parameters
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            for position, name in enumerate(node.input):
                kinds.setdefault(name, ("int8 weight", "scale", "zero point")[position])
        elif node.op_type in WEIGHTED:
            for name in node.input[1:3]:
                kinds.setdefault(name, "weight")
    for initializer in graph.initializer:  # constants of box decoding, anchors, shapes are not weights
        if initializer.name in kinds:
            yield initializer.name, numpy_helper.to_array(initializer), kinds[initializer.name]


def format_table(stats: List[WeightStat], flagged_only: bool = False) -> str:
    """A plain-text table, one row per tensor, and a summary line."""
    rows = [s for s in stats if s.flags or not flagged_only]
    header = (f"{'tensor':48} {'kind':11} {'shape':20} {'dtype':8} {'min':>10} {'max':>10} {'mean':>10} "
              f"{'std':>10}  flags")
    lines = [header, "-" * len(header)]
    for s in rows:
        lines.append(f"{s.name[-48:]:48} {s.kind:11} {str(list(s.shape)):20} {s.dtype:8} {s.min:10.3g} {s.max:10.3g} "
                     f"{s.mean:10.3g} {s.std:10.3g}  {', '.join(s.flags)}")
    flagged = [s for s in stats if s.flags]
    lines.append(f"{len(stats)} tensors, {sum(s.size for s in stats):,} values; {len(flagged)} flagged"
                 + (": " + ", ".join(f"{s.name} ({', '.join(s.flags)})" for s in flagged[:5]) if flagged else "")
                 + (" ..." if len(flagged) > 5 else ""))
    return "\n".join(lines)
