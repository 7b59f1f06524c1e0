"""The exported model against PyTorch on fresh images: the onnx target, the trt target
(plugins run by their reference implementations), batch 2, and no detections.
Tolerances: see export/verify.py (the issue's criteria)."""

import dataclasses
import json

import onnx
import pytest
import torch

from export import to_onnx, to_trt
from export.to_onnx import ExportError, export_config, export_onnx
from export.verify import verify_against_torch
from model.config import with_mask_pool_size
from model.maskrcnn import MaskRCNN
from model.weights.checkpoint import save_checkpoint
from runtime.detector import OnnxDetector
from runtime.model_info import OUTPUT_NAMES


@pytest.fixture(scope="module")
def model(synthetic_model):
    return synthetic_model


@pytest.fixture(scope="module")
def exports(tiny_exports):
    return tiny_exports


@pytest.mark.parametrize("target", ["onnx", "trt"])
def test_exported_graph_matches_pytorch(model, exports, target):
    result = verify_against_torch(model, exports[target])
    assert result.ok, result.summary()
    assert max(result.counts) == model.config.DETECTION_MAX_INSTANCES  # a full image is among them
    assert len(result.counts) == 3


def test_graph_contract_and_metadata(exports):
    graph = onnx.load(exports["onnx"])
    onnx.checker.check_model(graph, full_check=True)
    assert [o.name for o in graph.graph.output] == list(OUTPUT_NAMES)
    assert [i.name for i in graph.graph.input] == ["images", "windows"]
    ops = {n.op_type for n in graph.graph.node}
    assert {"RoiAlign", "NonMaxSuppression", "TopK"} <= ops and not any(n.domain for n in graph.graph.node)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["mrcnn.class_names"]) == ["BG", "a", "b"] and meta["mrcnn.input_size"] == "128x128"
    assert json.loads(meta["mrcnn.config"])["NUM_CLASSES"] == 3 and meta["mrcnn.target"] == "onnx"
    plugins = {(n.op_type, onnx.helper.get_attribute_value(a).decode())
               for n in onnx.load(exports["trt"]).graph.node if n.domain == "trt.plugins"
               for a in n.attribute if a.name == "plugin_version"}
    assert plugins == {("ROIAlign_TRT", "2"), ("EfficientNMS_TRT", "1")}  # ROIAlign v2: TensorRT >= 10.1
    assert OnnxDetector(exports["trt"]).info.batch_size == 2


def test_no_detections(model, tmp_path):
    silent = MaskRCNN(model.config).eval()
    silent.load_state_dict(model.state_dict())
    with torch.no_grad():
        silent.box_head.mrcnn_class_logits.bias[0] = 100.0  # every RoI is background
    path = str(tmp_path / "silent.onnx")
    export_onnx(silent, path, "onnx", 1)
    result = verify_against_torch(silent, path)
    assert result.ok and result.counts == [0, 0, 0], result.summary()


def test_14x14_masks_export_and_match(model, tmp_path):
    """MASK_POOL_SIZE 7 (benchmarks.train_shapes --mask-pool-size 7): the graph's masks are 14x14 and
    the full-size masks pasted from them match PyTorch's."""
    config = with_mask_pool_size(model.config, 7)
    small = MaskRCNN(config).eval()
    small.load_state_dict(model.state_dict())  # no weight depends on the mask size
    path = str(tmp_path / "masks14.onnx")
    export_onnx(small, path, "onnx", 1)
    assert [d.dim_value for d in onnx.load(path).graph.output[-1].type.tensor_type.shape.dim][-2:] == [14, 14]
    result = verify_against_torch(small, path)
    assert result.ok and max(result.counts) > 0, result.summary()


def test_export_config_limits(tiny_config):
    config = dataclasses.replace(tiny_config, PRE_NMS_LIMIT=6000, IMAGE_MAX_DIM=1024, IMAGE_MIN_DIM=800)
    with pytest.raises(ExportError, match="PRE_NMS_LIMIT 6000.*TopK takes k <= 3840.*--clamp-pre-nms"):
        export_config(config, None, "onnx", clamp_pre_nms=False)
    clamped, original = export_config(config, None, "onnx", clamp_pre_nms=True)
    assert (clamped.PRE_NMS_LIMIT, original) == (3840, 6000)
    clamped, _ = export_config(config, None, "trt", clamp_pre_nms=True)
    assert clamped.PRE_NMS_LIMIT == 4096
    with pytest.raises(ExportError, match="EfficientNMS_TRT reads at most 4096"):
        export_config(config, None, "trt", clamp_pre_nms=False)
    with pytest.raises(ExportError, match="multiple of 64"):
        export_config(tiny_config, 100, "onnx", False)
    with pytest.raises(ExportError, match="fixed size"):
        export_config(dataclasses.replace(tiny_config, IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=128), None, "onnx",
                      False)
    small, _ = export_config(tiny_config, 256, "onnx", False)
    assert small.IMAGE_MAX_DIM == 256


def test_cli_errors_before_long_work(tmp_path, tiny_model, capsys):
    assert to_onnx.main(["--weights", str(tmp_path / "none.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    checkpoint = str(tmp_path / "tiny.pt")
    save_checkpoint(checkpoint, tiny_model)
    assert to_onnx.main(["--weights", checkpoint, "--image-size", "100"]) == 2
    assert "multiple of 64" in capsys.readouterr().err
    assert to_onnx.main(["--weights", checkpoint, "--batch", "0", "--no-verify"]) == 2


def test_cli_checks_the_output_before_exporting(tmp_path, tiny_model, capsys, monkeypatch):
    """Issue 11, case 6: a read-only folder, a read-only file or a directory as --output gave
    a traceback after the export had run."""
    checkpoint = str(tmp_path / "tiny.pt")
    save_checkpoint(checkpoint, tiny_model)
    monkeypatch.setattr(to_onnx, "export_model", lambda *a, **k: pytest.fail("exported before checking --output"))
    assert to_onnx.main(["--weights", checkpoint, "--output", str(tmp_path)]) == 2
    assert "the --output path is a directory" in capsys.readouterr().err
    (tmp_path / "locked.onnx").write_bytes(b"old")
    (tmp_path / "locked.onnx").chmod(0o444)
    assert to_onnx.main(["--weights", checkpoint, "--output", str(tmp_path / "locked.onnx")]) == 2
    assert "locked.onnx: the --output file exists and is read-only" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("")
    assert to_onnx.main(["--weights", checkpoint, "--output", str(tmp_path / "a_file" / "m.onnx")]) == 2
    assert "cannot create the --output folder" in capsys.readouterr().err
    import tempfile

    def read_only_folder(*args, **kwargs):  # what mkstemp does in a read-only folder (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only_folder)
    assert to_onnx.main(["--weights", checkpoint, "--output", str(tmp_path / "ro" / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "m.onnx: cannot write the --output in" in err and "Permission denied" in err


def test_cli_exports_and_verifies(tmp_path, tiny_model, capsys):
    checkpoint = str(tmp_path / "tiny.pt")
    save_checkpoint(checkpoint, tiny_model)
    output = str(tmp_path / "tiny.onnx")
    assert to_onnx.main(["--weights", checkpoint, "--output", output]) == 0
    printed = capsys.readouterr().out
    assert "-> OK" in printed and "next: python -m runtime.detect" in printed and "python -m export.to_trt" in printed


def test_cli_exports_a_matterport_h5(tmp_path, tiny_model, keras_h5_writer, capsys):
    h5 = keras_h5_writer(tiny_model, str(tmp_path / "mask_rcnn_tiny.h5"))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_model.config.to_dict()))
    output = str(tmp_path / "tiny_trt.onnx")
    assert to_onnx.main(["--weights", h5, "--config", str(config), "--target", "trt", "--roialign-version", "1",
                         "--no-verify", "--output", output]) == 0, capsys.readouterr().err
    graph = onnx.load(output)
    versions = {onnx.helper.get_attribute_value(a).decode() for n in graph.graph.node if n.op_type == "ROIAlign_TRT"
                for a in n.attribute if a.name == "plugin_version"}
    assert versions == {"1"} and json.loads({p.key: p.value for p in graph.metadata_props}["mrcnn.config"])[
        "ROIALIGN_TRT_VERSION"] == "1"


def test_to_trt_without_tensorrt_prints_trtexec(tmp_path, tiny_exports, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here; the no-TensorRT path cannot be exercised")
    except (ImportError, OSError):
        pass
    code = to_trt.main(["--onnx", tiny_exports["trt"], "--precision", "fp16",
                        "--output", str(tmp_path / "m.engine")])
    err = capsys.readouterr().err
    assert code == 2 and "TensorRT is not available" in err
    assert "trtexec --onnx=" in err and "--fp16" in err and "--saveEngine=" in err
