"""benchmarks.run: the gates and the table (the whole run is exercised by the quickstart in CI)."""

import pytest

from benchmarks import run


def result(name, box_ap, mask_ap, mask_ap50, status="ok"):
    return run.FormatResult(name, status, box={"AP": box_ap}, mask={"AP": mask_ap, "AP50": mask_ap50, "AP75": 0.5},
                            latency_ms={"total": {"p50": 40.0, "p90": 50.0}})


def test_drops_parse():
    assert run.parse_drops(None) == {} and run.parse_drops("0.5") == {"*": 0.5}
    assert run.parse_drops("onnx=0.5,onnx-int8=2") == {"onnx": 0.5, "onnx-int8": 2.0}
    with pytest.raises(ValueError, match="unknown format 'tensorrt'"):
        run.parse_drops("tensorrt=1")


def test_gates_compare_against_torch_in_ap_points():
    results = [result("torch", 0.700, 0.650, 0.90), result("onnx", 0.698, 0.6496, 0.90),
               result("onnx-int8", 0.660, 0.640, 0.88), result("trt-fp16", 0, 0, 0, "not available (no TensorRT here)")]
    assert run.gate_failures(results, {"onnx": 0.5, "onnx-int8": 2.0}, None) == [
        "onnx-int8: box AP 66.0 is 4.00 points below torch's (allowed 2)"]
    assert run.gate_failures(results, {"*": 5.0}, 89) == ["onnx-int8: mask AP50 88.0 < 89"]
    failed = results + [result("onnx-fp16", 0, 0, 0, "failed: ValueError: boom")]
    assert "onnx-fp16: failed: ValueError: boom" in run.gate_failures(failed, {}, None)
    without_torch = results[1:]
    assert run.gate_failures(without_torch, {"*": 1.0}, None) == [
        "onnx-int8: box AP 66.0 is 3.80 points below onnx's (allowed 1)"]


def test_table_lists_every_format():
    text = run.table([result("torch", 0.7, 0.65, 0.9), result("trt-int8", 0, 0, 0, "not available (no TensorRT here)")])
    assert "| torch | ok |" in text and "| trt-int8 | not available (no TensorRT here) |" in text
    assert "| 25.0 |" in text  # FPS from the 40 ms p50


def test_unknown_format_is_refused(capsys):
    with pytest.raises(SystemExit):
        run.main(["--weights", "w.pt", "--formats", "torch,caffe"])
    assert "unknown formats ['caffe']" in capsys.readouterr().err
