"""INT8: TensorRT's symmetric Q/DQ form and ONNX Runtime's fast CPU form from one
calibration, the same scales for both export targets, cached ranges, fusion on the CPU."""

import collections

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration import int8
from calibration.agreement import compare_models
from calibration.data import CalibrationDataError, calibration_set
from runtime import open_model


@pytest.fixture(scope="module")
def quantized(tiny_exports, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    paths = {}
    for target, path in tiny_exports.items():
        paths[target] = str(folder / f"tiny_{target}.onnx")
        with open(path, "rb") as src, open(paths[target], "wb") as dst:
            dst.write(src.read())
    reports = int8.run([paths["onnx"], paths["trt"]], "shapes", 6, "minmax", None, False, [])
    return paths, reports


def q_params(path):
    """(scale, zero point) of every QuantizeLinear, in graph order, and the model."""
    graph = onnx.load(path)
    values = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    return [(values[n.input[1]], values[n.input[2]]) for n in graph.graph.node if n.op_type == "QuantizeLinear"], graph


def test_tensorrt_form_is_symmetric_int8_on_weighted_inputs(quantized):
    paths, reports = quantized
    trt_form = reports[0].models[0]
    assert trt_form.form == "tensorrt" and trt_form.path.endswith("tiny_onnx.int8.onnx")
    params, graph = q_params(trt_form.path)
    assert params and all(z.dtype == np.int8 and not z.any() for _, z in params)  # symmetric: zero point 0
    consumers = collections.defaultdict(list)
    for node in graph.graph.node:
        for name in node.input:
            consumers[name].append(node.op_type)
    dq_outputs = [n.output[0] for n in graph.graph.node if n.op_type == "DequantizeLinear"]
    assert {op for out in dq_outputs for op in consumers[out]} <= {"Conv", "ConvTranspose", "Gemm", "MatMul"}
    weights = [n for n in graph.graph.node if n.op_type == "DequantizeLinear"
               and any(p.name == "axis" for p in n.attribute)]
    assert len(weights) >= 80  # per-channel weights
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["mrcnn.precision"] == "int8-tensorrt" and meta["mrcnn.class_names"] == '["BG", "a", "b"]'


def test_both_targets_carry_the_same_scales(quantized):
    paths, reports = quantized
    assert [m.form for m in reports[1].models] == ["tensorrt"]  # a plugin graph gets no CPU form
    assert "the same scales as" in reports[1].calibration and not reports[1].calibrated
    onnx_params, _ = q_params(reports[0].models[0].path)
    trt_params, _ = q_params(reports[1].models[0].path)
    assert len(onnx_params) == len(trt_params)
    for (s1, z1), (s2, z2) in zip(onnx_params, trt_params):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(z1, z2)
    a, b = open_model(reports[0].models[0].path), open_model(reports[1].models[0].path)
    image = [np.full((100, 120, 3), 90, np.uint8)]
    np.testing.assert_allclose(a.detect(image)[0].scores, b.detect(image)[0].scores, atol=1e-5)


def test_cpu_form_fuses_in_onnx_runtime(quantized, tmp_path):
    import onnxruntime as ort

    paths, reports = quantized
    cpu_form = reports[0].models[1]
    params, _ = q_params(cpu_form.path)
    assert any(z.dtype == np.uint8 and z.any() for _, z in params)  # asymmetric u8 activations
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(cpu_form.path, options, providers=["CPUExecutionProvider"])
    kinds = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    convs = sum(kinds[k] for k in ("Conv", "FusedConv", "QLinearConv"))
    assert kinds["QLinearConv"] >= 0.95 * convs, kinds  # nearly every convolution runs in int8
    assert kinds["QLinearAdd"] >= 19, kinds  # the residual and FPN additions too


def test_ranges_are_cached_and_reused(quantized):
    paths, reports = quantized
    assert reports[0].calibrated
    again = int8.run([paths["onnx"]], "shapes", 6, "minmax", None, False, [], forms=("tensorrt",))
    assert not again[0].calibrated and again[0].calibration.startswith("ranges from")
    with pytest.raises(ValueError, match="calibrate_method|produced with"):
        int8.run([paths["onnx"]], "shapes", 6, "entropy", None, False, [], forms=("tensorrt",))


def test_keep_float_and_bad_arguments(quantized, tiny_exports, tmp_path):
    paths, _ = quantized
    kept = int8.run([paths["onnx"]], "shapes", 6, "minmax", str(tmp_path / "kept.onnx"), False,
                    ["node_linear_2"], forms=("tensorrt",))
    graph = onnx.load(kept[0].models[0].path)
    gemm = next(n for n in graph.graph.node if n.name == "node_linear_2")
    producers = {o: n.op_type for n in graph.graph.node for o in n.output}
    assert producers.get(gemm.input[0]) != "DequantizeLinear"
    with pytest.raises(ValueError, match="--keep-float names nodes the graph does not have"):
        int8.run([paths["onnx"]], "shapes", 6, "minmax", str(tmp_path / "x.onnx"), False, ["nope"])
    from runtime import ModelFileError

    with pytest.raises(ModelFileError, match="plugin nodes.*--target onnx export"):
        int8.run([paths["trt"]], "shapes", 6, "minmax", None, False, [])
    assert int8.main(["--onnx", paths["onnx"], "--data", str(tmp_path / "none"), "--recalibrate",
                      "--output", str(tmp_path / "y.onnx")]) == 2


def test_calibration_images_are_molded_like_the_runtime(tiny_exports, tmp_path):
    from PIL import Image

    info = open_model(tiny_exports["trt"]).info  # batch 2
    for i in range(3):
        Image.fromarray(np.full((60 + i, 80, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    data = calibration_set(str(tmp_path), info, 3)
    assert len(data.feeds) == 2 and data.feeds[0]["images"].shape == (2, 3, 128, 128)
    np.testing.assert_array_equal(data.feeds[1]["images"][0], data.feeds[1]["images"][1])  # filled like detect()
    molded = open_model(tiny_exports["trt"]).mold([np.asarray(Image.open(tmp_path / "0.png"))])
    np.testing.assert_array_equal(data.feeds[0]["images"][0], molded.images[0])
    with pytest.raises(CalibrationDataError, match="expected shapes, coco:"):
        calibration_set("imagenet", info, 3)
    with pytest.raises(CalibrationDataError, match="at least 1"):
        calibration_set("shapes", info, 0)


def test_int8_detections_stay_close(quantized, tiny_exports):
    """On the synthetic model (spread-out scores, near ties everywhere) most detections
    survive quantization; AP on a trained model is measured by benchmarks.run."""
    _, reports = quantized
    agreement = compare_models(tiny_exports["onnx"], reports[0].models[1].path)
    assert agreement.matched_share > 0.5 and agreement.mean_mask_iou > 0.7, agreement.summary()
