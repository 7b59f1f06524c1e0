"""Per-layer INT8 error: where quantization hurts, layer by layer (Polygraphy's layer-wise
comparison, on the CPU).

    python -m calibration.layers --onnx shapes.onnx --int8 shapes.int8.onnx
    python -m calibration.layers --onnx shapes.onnx --int8 shapes.int8.onnx --data photos/ --num-images 8 --top 20

Both graphs get the input and the output of every convolution and matrix product exposed
as extra outputs (the Q/DQ model keeps the float model's tensor names), run on the same
calibration images (molded as the runtime molds them), and every layer's output is
compared: relative L2 error ``|int8 - fp32| / |fp32|``, cosine similarity, and the growth
of the relative error from the layer's input to its output. The layers at the top are
those to try in float first: ``python -m calibration.int8 ... --keep-float NAME,...``.
The heads after RoI pooling also see the boxes move when the proposals do, so their error
mixes both; the growth column separates what the layer adds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from calibration.data import CalibrationDataError, calibration_set
from calibration.graph import load_onnx, model_info, weighted_nodes
from runtime.model_info import ModelFileError


@dataclass
class LayerError:
    node: str
    op_type: str
    relative_l2: float
    cosine: float
    input_relative_l2: float

    @property
    def growth(self) -> float:
        return self.relative_l2 - self.input_relative_l2


def expose(path: str, tensors: List[str], output: str) -> str:
    """A copy of the model at ``path`` that also outputs ``tensors`` (float32)."""
    import onnx
    from onnx import TensorProto, helper

    from runtime.integrity import save_onnx

    graph = onnx.load(path)
    present = {o.name for o in graph.graph.output}
    graph.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None)
                              for t in tensors if t not in present)
    save_onnx(graph, output)
    return output


def layer_errors(fp32_path: str, int8_path: str, feeds: List[Dict[str, np.ndarray]]) -> List[LayerError]:
    """The error of every weighted layer of ``int8_path`` against ``fp32_path``, over ``feeds``."""
    import onnx
    import onnxruntime as ort

    from calibration.graph import fold_weight_reshapes

    reference = onnx.load(fp32_path, load_external_data=False)
    fold_weight_reshapes(reference)
    layers = [(n.name, n.op_type, n.input[0], n.output[0]) for n in weighted_nodes(reference)]
    tensors = sorted({t for _, _, i, o in layers for t in (i, o)})
    with tempfile.TemporaryDirectory(prefix="layers.") as folder:
        sessions = [ort.InferenceSession(expose(path, tensors, os.path.join(folder, f"{k}.onnx")),
                                         providers=["CPUExecutionProvider"])
                    for k, path in enumerate((fp32_path, int8_path))]
        available = [{o.name for o in s.get_outputs()} for s in sessions]
        missing = sorted(set(tensors) - available[1])
        if missing:
            raise ModelFileError(f"{int8_path} lacks tensors of {fp32_path} ({missing[:3]}...): compare the "
                                 f"quantized model with the float model it was made from")
        squares = {t: np.zeros(3) for t in tensors}  # |a|^2, |a-b|^2, a.b ; and |b|^2 below
        norms_b = {t: 0.0 for t in tensors}
        for feed in feeds:
            a_out, b_out = (dict(zip(tensors, s.run(tensors, feed))) for s in sessions)
            for t in tensors:
                a, b = a_out[t].astype(np.float64).ravel(), b_out[t].astype(np.float64).ravel()
                squares[t] += [a @ a, (a - b) @ (a - b), a @ b]
                norms_b[t] += b @ b

    def relative(t):
        return float(np.sqrt(squares[t][1] / max(squares[t][0], 1e-30)))

    def cosine(t):
        return float(squares[t][2] / max(np.sqrt(squares[t][0] * norms_b[t]), 1e-30))

    errors = [LayerError(name, op, relative(o), cosine(o), relative(i)) for name, op, i, o in layers]
    return sorted(errors, key=lambda e: e.relative_l2, reverse=True)


def report(errors: List[LayerError], top: int) -> str:
    lines = [f"{'layer':32s} {'op':14s} {'rel L2':>8s} {'cosine':>8s} {'growth':>8s}"]
    lines += [f"{e.node:32s} {e.op_type:14s} {e.relative_l2:8.4f} {e.cosine:8.5f} {e.growth:+8.4f}"
              for e in errors[:top]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.layers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="the float32 export (--target onnx)")
    parser.add_argument("--int8", required=True, help="its Q/DQ model from calibration.int8")
    parser.add_argument("--data", default="shapes", help="shapes | coco:INSTANCES.json | a folder of images")
    parser.add_argument("--num-images", type=int, default=4)
    parser.add_argument("--top", type=int, default=15, help="layers to list")
    args = parser.parse_args(argv)
    try:
        info = model_info(load_onnx(args.onnx, False), args.onnx)
        feeds = calibration_set(args.data, info, args.num_images).feeds
        errors = layer_errors(args.onnx, args.int8, feeds)
    except (ModelFileError, CalibrationDataError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(errors)} layers of {args.int8} against {args.onnx} on {args.num_images} images, worst first:")
    print(report(errors, args.top))
    worst = ",".join(e.node for e in errors[:3])
    print(f"next: python -m calibration.int8 --onnx {args.onnx} --data {args.data} --keep-float {worst}   "
          f"(the worst three in float)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
