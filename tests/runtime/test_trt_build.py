"""The TensorRT engine builder: everything that can be checked without TensorRT, and a
real build that runs only where tensorrt and a GPU exist (skipped here)."""

import json
from dataclasses import asdict

import pytest

from export import to_trt
from runtime.model_info import ModelFileError
from runtime.trt_build import (
    BuildError,
    BuildOptions,
    EngineMetadata,
    TensorRTUnavailableError,
    _check_precision,
    build_engine,
    check_engine_compatible,
    metadata_path,
    parser_errors,
    profile_shapes,
    read_onnx_summary,
    trtexec_command,
)


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
        return True
    except (ImportError, OSError):
        return False


def test_options_are_checked():
    with pytest.raises(ValueError, match="precision"):
        BuildOptions("m.onnx", "m.engine", precision="int4")
    with pytest.raises(ValueError, match="workspace"):
        BuildOptions("m.onnx", "m.engine", workspace_mb=0)
    with pytest.raises(ValueError, match="DLA"):
        BuildOptions("m.onnx", "m.engine", dla_core=-1)


def test_trtexec_command():
    assert trtexec_command(BuildOptions("a b.onnx", "m.engine", "fp32")) == \
        "trtexec '--onnx=a b.onnx' --saveEngine=m.engine --memPoolSize=workspace:4096M"
    line = trtexec_command(BuildOptions("m.onnx", "m.engine", "int8", 1024, "c.cache", 0, True))
    for part in ("--int8", "--fp16", "--memPoolSize=workspace:1024M", "--timingCacheFile=c.cache",
                 "--useDLACore=0", "--allowGPUFallback", "--verbose"):
        assert part in line


@pytest.mark.skipif(tensorrt_importable(), reason="tensorrt is installed: the unavailable path cannot happen")
def test_no_tensorrt_gives_the_trtexec_line(tiny_exports, tmp_path):
    engine = str(tmp_path / "m.engine")
    with pytest.raises(TensorRTUnavailableError, match=rf"trtexec --onnx={tiny_exports['trt']} "
                                                       rf"--saveEngine={engine} .*--fp16"):
        build_engine(BuildOptions(tiny_exports["trt"], engine, "fp16"))


def test_the_onnx_and_the_output_are_checked_before_tensorrt(tiny_exports, tmp_path, capsys):
    """Issue 11, case 11: a missing ONNX used to get "TensorRT is not available" and a
    trtexec line for a file that does not exist."""
    with pytest.raises(ModelFileError, match="missing.onnx: ONNX file not found"):
        build_engine(BuildOptions(str(tmp_path / "missing.onnx"), str(tmp_path / "m.engine")))
    assert to_trt.main(["--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert "trtexec" not in capsys.readouterr().err
    with pytest.raises(ModelFileError, match="is a directory"):
        build_engine(BuildOptions(str(tmp_path), str(tmp_path / "m.engine")))
    with pytest.raises(ValueError, match="the engine path is a directory"):
        build_engine(BuildOptions(tiny_exports["trt"], str(tmp_path)))


def test_batch_profile():
    static = {"images": [2, 3, 128, 128], "windows": [2, 4]}
    assert profile_shapes(BuildOptions("m.onnx", "e"), static) is None
    assert profile_shapes(BuildOptions("m.onnx", "e", batch_profile=(2, 2, 2)), static) is None
    with pytest.raises(BuildError, match=r"fixed batch of \[2\].*--batch N"):
        profile_shapes(BuildOptions("m.onnx", "e", batch_profile=(1, 2, 4)), static)
    dynamic = {"images": [None, 3, 128, 128], "windows": [None, 4]}
    with pytest.raises(BuildError, match="dynamic batch dimension: pass --batch-profile"):
        profile_shapes(BuildOptions("m.onnx", "e"), dynamic)
    shapes = profile_shapes(BuildOptions("m.onnx", "e", batch_profile=(1, 2, 4)), dynamic)
    assert shapes == {"images": ((1, 3, 128, 128), (2, 3, 128, 128), (4, 3, 128, 128)),
                      "windows": ((1, 4), (2, 4), (4, 4))}
    line = trtexec_command(BuildOptions("m.onnx", "e"), shapes)
    assert "--minShapes=images:1x3x128x128,windows:1x4" in line and "--maxShapes=images:4x3x128x128,windows:4x4" in line
    with pytest.raises(BuildError, match="beyond the batch"):
        profile_shapes(BuildOptions("m.onnx", "e", batch_profile=(1, 1, 1)), {"images": [None, 3, None, None]})
    with pytest.raises(ValueError, match="min <= opt <= max"):
        BuildOptions("m.onnx", "e", batch_profile=(2, 1, 4))
    assert to_trt.batch_profile("2") == (2, 2, 2) and to_trt.batch_profile("1,2,4") == (1, 2, 4)


def test_onnx_summary_of_an_export(tmp_path, tiny_model):
    from export.to_onnx import export_onnx

    path = str(tmp_path / "tiny.onnx")
    export_onnx(tiny_model, path, "trt", batch_size=2)
    summary = read_onnx_summary(path)
    assert summary.inputs == {"images": [2, 3, 128, 128], "windows": [2, 4]}
    assert not summary.has_qdq and not summary.is_fp16 and summary.metadata["mrcnn.target"] == "trt"
    assert len(summary.sha256) == 64 and len(summary.node_names) > 100
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ModelFileError, match="broken.onnx: not a readable ONNX"):
        read_onnx_summary(str(tmp_path / "broken.onnx"))


def test_precision_needs_the_right_onnx():
    with pytest.raises(BuildError, match="no QuantizeLinear"):
        _check_precision(BuildOptions("m.onnx", "e", "int8"), strongly_typed=False, has_qdq=False, is_fp16=False)
    with pytest.raises(BuildError, match="strongly typed.*AutoCast"):
        _check_precision(BuildOptions("m.onnx", "e", "fp16"), strongly_typed=True, has_qdq=False, is_fp16=False)
    _check_precision(BuildOptions("m.onnx", "e", "fp16"), strongly_typed=False, has_qdq=False, is_fp16=False)
    _check_precision(BuildOptions("m.onnx", "e", "int8"), strongly_typed=True, has_qdq=True, is_fp16=False)


class FakeError:
    def __init__(self, index, name=None):
        self.index, self.name = index, name
        if name is not None:  # TensorRT 10 reports the name itself
            self.node_name = lambda: name
            self.node_operator = lambda: "EfficientNMS_TRT"

    def node(self):
        return self.index

    def desc(self):
        return "Plugin not found"


class FakeParser:
    def __init__(self, errors):
        self.errors = errors
        self.num_errors = len(errors)

    def get_error(self, i):
        return self.errors[i]


def test_parser_errors_name_the_node():
    text = parser_errors(FakeParser([FakeError(1), FakeError(7, "nms_1")]), ["conv_0", "roi_align_3"])
    assert "node 1 'roi_align_3' : Plugin not found" in text
    assert "node 7 'nms_1' EfficientNMS_TRT: Plugin not found" in text


def write_metadata(engine, version="10.3.0", capability="8.7"):
    metadata = EngineMetadata(tensorrt_version=version, gpu_name="Orin", compute_capability=capability,
                              precision="fp16", strongly_typed=False, onnx_sha256="x", model={})
    with open(metadata_path(str(engine)), "w") as f:
        json.dump(asdict(metadata), f)


def test_engine_from_another_tensorrt_or_gpu_is_refused(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(ModelFileError, match="metadata missing"):
        check_engine_compatible(str(engine), "10.3.0")
    write_metadata(engine)
    assert check_engine_compatible(str(engine), "10.3.0", {"compute_capability": "8.7", "gpu_name": "Orin"})
    with pytest.raises(ModelFileError, match="built with TensorRT 10.3.0, this is TensorRT 8.6.2; rebuild"):
        check_engine_compatible(str(engine), "8.6.2")
    with pytest.raises(ModelFileError, match="compute capability 8.7.*this GPU is 8.9"):
        check_engine_compatible(str(engine), "10.3.0", {"compute_capability": "8.9", "gpu_name": "L4"})
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="invalid engine metadata"):
        check_engine_compatible(str(engine), "10.3.0")


@pytest.mark.trt
@pytest.mark.skipif(not tensorrt_importable(), reason="needs the tensorrt package and an NVIDIA GPU")
def test_build_engine_from_the_trt_export(tmp_path, tiny_model):
    from export.to_onnx import export_onnx

    onnx_path = str(tmp_path / "tiny_trt.onnx")
    export_onnx(tiny_model, onnx_path, "trt", 1)
    metadata = build_engine(BuildOptions(onnx_path, str(tmp_path / "tiny.engine"), "fp16",
                                         timing_cache=str(tmp_path / "cache")))
    assert (tmp_path / "tiny.engine").stat().st_size > 0 and (tmp_path / "cache").exists()
    assert metadata.precision == "fp16" and metadata.model["mrcnn.target"] == "trt"
