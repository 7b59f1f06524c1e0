"""FP16 models: the network part of an export in float16, for TensorRT's strongly typed builds.

    python -m calibration.fp16 --onnx shapes.onnx                 # writes shapes.fp16.onnx
    python -m calibration.fp16 --onnx shapes_trt.onnx --output model.fp16.onnx

TensorRT 11 has no FP16 builder flag: it builds an ONNX in the types it holds. This
converts the network (convolutions, matrix products, ReLUs, residual and FPN additions,
max pooling: calibration.graph; the nearest upsampling stays float32) to float16, with
casts at its borders, and keeps in float32 what is numerically sensitive or index-like:
anchors and box decoding (exp, log, deltas), NMS and top-k, RoI pooling and its level
assignment, softmax, sigmoid, and the graph's inputs and outputs. TensorRT 8.5-10.x
users need none of this: ``export.to_trt --precision fp16`` sets the builder flag on
the fp32 ONNX.

The result is checked in ONNX Runtime on the CPU, which has float16 kernels for every
converted op type: detections against the fp32 graph on the same images
(calibration.agreement: one-to-one matching, box, score and mask agreement).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Set

from calibration.graph import fold_weight_reshapes, load_onnx, model_info, quantizable_nodes
from runtime.files import check_output_path
from runtime.integrity import save_onnx
from runtime.model_info import ModelFileError


@dataclass
class Fp16Report:
    source: str
    path: str
    converted_nodes: int
    kept_float32: int
    size_bytes: int


def network_nodes(graph) -> List[str]:
    """The nodes that become float16: the set the CPU INT8 form quantizes, but the FPN's
    upsampling (Resize takes its scales in float32; nearest neighbours cost nothing)."""
    kinds = {node.name: node.op_type for node in graph.graph.node}
    return [name for name in quantizable_nodes(graph, "cpu") if kinds[name] != "Resize"]


def to_float16(graph, names: Set[str]) -> int:
    """Turn the nodes ``names`` of the onnx ModelProto into float16, in place: their weights
    become float16 initializers (copies, where a float32 node shares them), each float32
    input from outside the set gets a Cast to float16, and each of their outputs read
    outside the set a Cast back to float32. Returns the number of Casts inserted."""
    from onnx import TensorProto, helper, numpy_helper

    body = graph.graph
    initializers = {init.name: init for init in body.initializer}
    converted = {name for node in body.node if node.name in names for name in node.output}
    if converted & {output.name for output in body.output}:
        raise ValueError("a graph output is made by a float16 node: keep that node in float32")
    halves, casts, nodes = {}, {}, []

    def cast(tensor: str, to: int) -> str:
        if (tensor, to) not in casts:
            casts[(tensor, to)] = f"{tensor}__to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [tensor], [casts[(tensor, to)]], to=to,
                                          name=f"cast_{casts[(tensor, to)]}"))
        return casts[(tensor, to)]

    for node in list(body.node):
        for slot, tensor in enumerate(node.input):
            if not tensor:
                continue
            if node.name in names and tensor not in converted:
                if tensor in initializers:
                    if tensor not in halves:
                        halves[tensor] = numpy_helper.from_array(
                            numpy_helper.to_array(initializers[tensor]).astype("float16"), tensor + "__fp16")
                    node.input[slot] = halves[tensor].name
                else:
                    node.input[slot] = cast(tensor, TensorProto.FLOAT16)
            elif node.name not in names and tensor in converted:
                node.input[slot] = cast(tensor, TensorProto.FLOAT)
        nodes.append(node)
    body.initializer.extend(halves.values())
    used = {tensor for node in nodes for tensor in node.input}
    keep = [init for init in body.initializer if init.name in used]
    del body.initializer[:], body.node[:], body.value_info[:]  # value_info types changed: inferred again on load
    body.initializer.extend(keep)
    body.node.extend(nodes)
    return len(casts)


def convert(onnx_path: str, output: Optional[str] = None) -> Fp16Report:
    """Write the float16 form of ``onnx_path`` (default NAME.fp16.onnx beside it)."""

    output = check_output_path(output or onnx_path[: -len(".onnx")] + ".fp16.onnx")
    graph = load_onnx(onnx_path)
    model_info(graph, onnx_path)  # our export, or a clear error
    fold_weight_reshapes(graph)
    names = set(network_nodes(graph))
    to_float16(graph, names)
    graph.metadata_props.add(key="mrcnn.precision", value="fp16")
    save_onnx(graph, output)
    return Fp16Report(onnx_path, output, len(names), len(graph.graph.node) - len(names), os.path.getsize(output))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.fp16", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="an export of python -m export.to_onnx (either target)")
    parser.add_argument("--output", help="default: NAME.fp16.onnx beside the input")
    parser.add_argument("--no-check", action="store_true", help="skip the check against the fp32 graph")
    args = parser.parse_args(argv)
    try:
        report = convert(args.onnx, args.output)
    except (ModelFileError, ImportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.path} ({report.converted_nodes} nodes in float16, {report.kept_float32} kept in float32, "
          f"{report.size_bytes / 1e6:.1f} MB)")
    if not args.no_check:
        from calibration.agreement import compare_models

        agreement = compare_models(args.onnx, report.path)
        print(agreement.summary())
    print(f"next: python -m export.to_trt --onnx {report.path} --precision fp16   (TensorRT 11: strongly typed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
