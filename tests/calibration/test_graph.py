"""Where the Q/DQ go, and the graph edits that let them fuse (calibration/graph.py)."""

import onnx
import pytest

from calibration.graph import (
    fold_weight_reshapes,
    quantizable_nodes,
    unshare_weights,
    weighted_input_names,
    weighted_nodes,
)


@pytest.fixture(scope="module")
def graph(tiny_exports):
    return onnx.load(tiny_exports["onnx"])


def test_the_box_heads_matmul_gets_its_weight(graph):
    graph = onnx.ModelProto.FromString(graph.SerializeToString())
    before = len(weighted_nodes(graph))
    assert fold_weight_reshapes(graph) >= 2  # Reshape and Transpose of mrcnn_class_conv1's weight
    assert len(weighted_nodes(graph)) == before + 1
    matmul = next(n for n in weighted_nodes(graph) if n.op_type == "MatMul")
    assert matmul.input[1] in {i.name for i in graph.graph.initializer}
    assert "model.box_head.mrcnn_class_conv1.weight" not in {i.name for i in graph.graph.initializer}


def test_forms_quantize_the_network_only(graph):
    graph = onnx.ModelProto.FromString(graph.SerializeToString())
    fold_weight_reshapes(graph)
    kinds = {n.name: n.op_type for n in graph.graph.node}
    trt, cpu = quantizable_nodes(graph, "tensorrt"), quantizable_nodes(graph, "cpu")
    assert {kinds[n] for n in trt} == {"Conv", "ConvTranspose", "Gemm", "MatMul"}
    assert set(trt) < set(cpu)
    assert {kinds[n] for n in cpu} == {"Conv", "ConvTranspose", "Gemm", "MatMul", "Relu", "Add", "Resize", "MaxPool"}
    for excluded in ("RoiAlign", "NonMaxSuppression", "Softmax", "Sigmoid", "TopK", "Exp"):
        assert not any(kinds[n] == excluded for n in cpu)
    adds = [n for n in graph.graph.node if n.op_type == "Add"]
    network_adds = [n for n in adds if n.name in cpu]
    assert 16 + 3 <= len(network_adds) < len(adds)  # 16 residual blocks of R50 and 3 FPN merges, not the decoding
    with pytest.raises(ValueError, match="form"):
        quantizable_nodes(graph, "gpu")


def test_shared_rpn_weights_are_unshared(graph):
    graph = onnx.ModelProto.FromString(graph.SerializeToString())
    users = [n for n in weighted_nodes(graph) if n.input[1] == "model.rpn.rpn_conv_shared.weight"]
    assert len(users) == 5  # one RPN head over P2..P6
    copies = unshare_weights(graph)
    assert copies >= 3 * 4  # shared conv, class and box convs: 4 copies each (weights and biases)
    assert len({n.input[1] for n in weighted_nodes(graph)}) == len(weighted_nodes(graph))
    assert len(weighted_input_names(graph)) == len(weighted_nodes(graph))
