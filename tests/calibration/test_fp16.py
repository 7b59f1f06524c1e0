"""FP16: the network in float16 with casts at its borders, checked in ONNX Runtime."""

import numpy as np
import onnx
from onnx import TensorProto

from calibration import fp16
from calibration.agreement import compare_models


def test_fp16_model_runs_and_agrees(tiny_exports, tmp_path):
    report = fp16.convert(tiny_exports["onnx"], str(tmp_path / "tiny.fp16.onnx"))
    graph = onnx.load(report.path)
    halves = [i for i in graph.graph.initializer if i.data_type == TensorProto.FLOAT16]
    assert len(halves) >= 86  # the weights of every convolution and matrix product (and most biases)
    assert all(i.type.tensor_type.elem_type == TensorProto.FLOAT for i in graph.graph.input)
    assert all(n.op_type != "RoiAlign" or all(not name.endswith("__to_fp16") for name in n.input)
               for n in graph.graph.node)
    network = set(fp16.network_nodes(onnx.load(tiny_exports["onnx"])))  # once: the comprehension would reload per node
    kinds = {n.op_type for n in graph.graph.node if n.name in network}
    assert "Softmax" not in kinds and "NonMaxSuppression" not in kinds
    agreement = compare_models(tiny_exports["onnx"], report.path)
    assert agreement.matched_share >= 0.95 and agreement.mean_mask_iou >= 0.95, agreement.summary()
    assert {p.key: p.value for p in graph.metadata_props}["mrcnn.precision"] == "fp16"
    assert report.size_bytes < 0.6 * np.int64(__import__("os").path.getsize(tiny_exports["onnx"]))


def test_fp16_cli(tiny_exports, tmp_path, capsys):
    assert fp16.main(["--onnx", tiny_exports["onnx"], "--output", str(tmp_path / "m.fp16.onnx"), "--no-check"]) == 0
    assert "nodes in float16" in capsys.readouterr().out
    (tmp_path / "bad.onnx").write_bytes(b"x")
    assert fp16.main(["--onnx", str(tmp_path / "bad.onnx")]) == 2
