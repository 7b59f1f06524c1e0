"""Which nodes of an exported graph get Q/DQ, and the graph edits that let them fuse.

The network part of Mask R-CNN (backbone, FPN, RPN head, box and mask heads) is
convolutions, matrix products, ReLUs, residual additions, the FPN's nearest upsampling
and max pooling; everything else (anchors and box decoding, NMS, RoI pooling, softmax,
sigmoid, the selection of the detected class's mask) stays in float.

- ``tensorrt`` form: Q/DQ on the inputs of Conv, ConvTranspose, Gemm and MatMul, as
  TensorRT's explicit-quantization rules expect; TensorRT fuses the rest itself.
- ``cpu`` form: also the network's ReLUs, additions (both inputs made by network ops:
  residual and FPN additions, not the box decoding's), upsampling and max pooling, so
  that ONNX Runtime sees DQ -> op -> Q around every op of a chain and fuses it into its
  QLinear kernels; a float op between two convolutions breaks the chain into a
  DequantizeLinear, a float op and a QuantizeLinear at run time.

``prepare_for_quantization`` folds the reshapes of constant weights (so the box head's
first layer is a MatMul with a weight) and gives every convolution its own weight
initializer: the RPN head is one set of weights applied to five pyramid levels, and ONNX
Runtime fuses a DequantizeLinear into QLinearConv only when the Conv is its single consumer.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Dict, List, Tuple

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
NETWORK = WEIGHTED + ("Relu", "Add", "Resize", "MaxPool")


def load_onnx(path: str, load_external_data: bool = True):
    """onnx.load, with a ModelFileError naming the file when it is missing or not ONNX,
    and a DamagedFileError when its content hash does not match."""
    import onnx

    from runtime.integrity import check_onnx_file
    from runtime.model_info import ModelFileError

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: ONNX file not found")
    check_onnx_file(path)
    try:
        return onnx.load(path, load_external_data=load_external_data)
    except Exception as exc:  # protobuf decode errors have no common base class worth naming
        raise ModelFileError(f"{path}: not a readable ONNX file ({exc})") from exc


def model_info(graph, path: str):
    """The runtime.ModelInfo an export carries in its metadata (a ModelFileError naming
    ``path`` when it is not one of this project's exports)."""
    from runtime.model_info import ModelInfo

    return ModelInfo.from_metadata({p.key: p.value for p in graph.metadata_props}, path)


def producers(graph) -> Dict[str, object]:
    return {output: node for node in graph.graph.node for output in node.output}


def quantizable_nodes(graph, form: str) -> List[str]:
    """Names of the nodes to quantize in ``form`` ("tensorrt" or "cpu"), in graph order."""
    if form not in ("tensorrt", "cpu"):
        raise ValueError(f"form must be tensorrt or cpu, got {form!r}")
    made_by = producers(graph)
    weighted = {node.name for node in weighted_nodes(graph)}
    names = []
    for node in graph.graph.node:
        if node.name in weighted:
            names.append(node.name)
        elif form == "cpu" and node.op_type in NETWORK[len(WEIGHTED):] and _inside_network(node, made_by):
            names.append(node.name)
    return names


def _inside_network(node, made_by) -> bool:
    """Every data input of ``node`` is made by a network op (an Add of two convolutions'
    outputs, not the box decoding's Add of a product and a constant)."""
    data_inputs = node.input[:2] if node.op_type == "Add" else node.input[:1]
    return all(name in made_by and made_by[name].op_type in NETWORK for name in data_inputs)


def weighted_nodes(graph) -> List[object]:
    """Convolutions and matrix products whose second input is a weight (an initializer):
    an activation-by-activation MatMul is not a layer to quantize."""
    initializers = {init.name for init in graph.graph.initializer}
    return [node for node in graph.graph.node if node.op_type in WEIGHTED and len(node.input) > 1
            and node.input[1] in initializers]


def fold_weight_reshapes(graph) -> int:
    """Replace Reshape / Transpose nodes whose inputs are all initializers by their result
    (the export writes the box head's 7x7 convolution as MatMul(x, Transpose(Reshape(W))):
    a quantizer must see W as a weight). Returns how many nodes were folded."""
    import numpy as np
    from onnx import helper, numpy_helper

    folded = 0
    while True:
        values = {init.name: init for init in graph.graph.initializer}
        node = next((n for n in graph.graph.node if n.op_type in ("Reshape", "Transpose")
                     and all(i in values for i in n.input if i)), None)
        if node is None:
            used = {name for n in graph.graph.node for name in n.input}
            keep = [init for init in graph.graph.initializer if init.name in used]
            del graph.graph.initializer[:]
            graph.graph.initializer.extend(keep)
            return folded
        data = numpy_helper.to_array(values[node.input[0]])
        if node.op_type == "Reshape":
            result = data.reshape(numpy_helper.to_array(values[node.input[1]]).astype(np.int64))
        else:
            perm = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"), None)
            result = np.transpose(data, perm)
        graph.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(result), node.output[0]))
        graph.graph.node.remove(node)
        folded += 1


def unshare_weights(graph) -> int:
    """Give each weighted node its own copy of a weight initializer used by several;
    returns how many copies were made."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.graph.initializer}
    users = Counter(node.input[1] for node in weighted_nodes(graph))
    seen: Dict[Tuple[str, int], int] = defaultdict(int)
    copies = 0
    for node in weighted_nodes(graph):
        for slot in (1, 2):
            if len(node.input) <= slot or users.get(node.input[1], 0) < 2:
                continue
            name = node.input[slot]
            if name not in initializers:
                continue
            seen[(name, slot)] += 1
            if seen[(name, slot)] == 1:
                continue  # the first user keeps the original
            copy = numpy_helper.from_array(numpy_helper.to_array(initializers[name]),
                                           f"{name}__copy{seen[(name, slot)]}")
            graph.graph.initializer.append(copy)
            node.input[slot] = copy.name
            copies += 1
    return copies


def float_inputs_for_float_ops(graph, quantized: List[str]) -> int:
    """Let every op that was not quantized read the float tensor again, not its Q/DQ copy.

    ONNX Runtime's quantizer puts the Q/DQ pair on a tensor, so all its readers see the
    rounded values: the shortcut of a residual block, the RoI pooling of an FPN level, a
    layer kept in float. In the TensorRT form only the quantized ops' inputs should be;
    returns how many inputs were rewired (Q/DQ pairs left without readers are removed)."""
    made_by = producers(graph)
    initializers = {init.name for init in graph.graph.initializer}
    keep = set(quantized) | {"QuantizeLinear", "DequantizeLinear"}
    rewired = 0
    for node in graph.graph.node:
        if node.name in keep or node.op_type in keep:
            continue
        for slot, tensor in enumerate(node.input):
            dq = made_by.get(tensor)
            q = made_by.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in initializers:
                node.input[slot] = q.input[0]
                rewired += 1
    while True:  # drop Q/DQ nodes nobody reads any more
        read = {tensor for node in graph.graph.node for tensor in node.input} | {o.name for o in graph.graph.output}
        unused = [n for n in graph.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and n.output[0] not in read]
        if not unused:
            return rewired
        for node in unused:
            graph.graph.node.remove(node)


def prepare_for_quantization(path: str, output: str) -> str:
    """The graph at ``path`` with shapes inferred and shared weights unshared, saved to ``output``."""
    import onnx

    from runtime.integrity import save_onnx

    graph = load_onnx(path)
    fold_weight_reshapes(graph)
    unshare_weights(graph)
    graph = onnx.shape_inference.infer_shapes(graph)
    save_onnx(graph, output)
    return output


def weighted_input_names(graph) -> List[str]:
    """The activation input of every weighted node, in graph order: the tensors whose
    scales two exports of the same weights must share."""
    return [node.input[0] for node in weighted_nodes(graph)]
