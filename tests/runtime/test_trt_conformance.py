"""TensorRT API conformance on a CPU: the engine builder (runtime.trt_build) and the engine
detector (runtime.trt_runtime) driven through stand-ins generated from the real Python
bindings of TensorRT 10.3 (JetPack 6.1/6.2), 10.16 (newest 10.x) and 11.4 (newest 11.x).

Every TensorRT name they use must exist in that version, every call must fit its real
signature, and each version-dependent branch must take the path that exists there. The
detector runs end to end: its buffers are host memory behind cuda_standin.FakeCudart
(whose calls are checked against the real cuda-python), and "executing" the engine runs
the same graph in ONNX Runtime, so its detections are compared with MaskRCNN.detect.
This proves API use only: not TensorRT's numerics, its plugins, or its speed.
"""

import hashlib
import json
import os
from dataclasses import asdict

import numpy as np
import pytest
import trt_api
from cuda_standin import FakeCudart
from trt_standin import ConformanceError, generate

from export.verify import verification_images
from runtime.compare import match_detections
from runtime.cuda_api import Cuda
from runtime.detector import OnnxDetector
from runtime.integrity import DamagedFileError, save_onnx
from runtime.model_info import ModelFileError
from runtime.trt_build import BuildError, BuildOptions, EngineMetadata, build_engine, metadata_path, read_onnx_summary
from runtime.trt_runtime import TrtDetector


@pytest.fixture(scope="module", params=trt_api.VERSIONS)
def api(request):
    try:
        return trt_api.read_api(request.param)
    except trt_api.BindingsUnavailable as exc:
        if os.environ.get("MRCNN_REQUIRE_TRT_BINDINGS"):  # CI: the check must run
            raise
        pytest.skip(f"TensorRT {request.param} bindings unavailable here: {exc}")


def test_the_stand_in_is_the_real_api(api):
    """What the version branches rest on, as the real bindings have it."""
    major = int(api["version"].split(".")[0])
    flags = api["enums"]["BuilderFlag"]
    assert ("FP16" in flags and "INT8" in flags) == (major < 11)
    assert ("IInt8EntropyCalibrator2" in api["classes"]) == (major < 11)
    assert "STRONGLY_TYPED" in api["enums"]["NetworkDefinitionCreationFlag"]
    context = api["classes"]["IExecutionContext"]["methods"]
    assert "execute_async_v3" in context and "execute_async_v2" not in context  # bindings API gone in 10.x
    trt = generate(api).module
    with pytest.raises(ConformanceError, match="no constructor"):
        trt.ICudaEngine()


# ---------------------------------------------------------------- the builder
def small_onnx(path, source_metadata, qdq=False, fp16=False):
    """A two-node ONNX with our export's metadata: what build_engine reads before TensorRT
    parses it (the parser is a stand-in, so the graph itself does not matter)."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    nodes = [helper.make_node("Identity", ["images"], ["num_detections"])]
    inits = []
    if qdq:
        inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
                 helper.make_tensor("z", TensorProto.INT8, [], [0])]
        nodes = [helper.make_node("QuantizeLinear", ["images", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["num_detections"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", elem, [1, 3, 128, 128])],
                              [helper.make_tensor_value_info("num_detections", elem, [1, 3, 128, 128])], inits)
    model = helper.make_model(graph)
    for key, value in source_metadata.items():
        model.metadata_props.add(key=key, value=value)
    save_onnx(model, str(path))
    return str(path)


def builder_behaviours(parse_ok=True):
    def parser_error(parser, index):
        error = parser._owner.instance("ParserError")
        error._state.update(node=3, name="roi_align_2", op="ROIAlign_TRT")
        return error

    return {
        "OnnxParser.parse_from_file": lambda parser, path: parse_ok,
        "OnnxParser.num_errors": lambda parser: 0 if parse_ok else 1,
        "OnnxParser.get_error": parser_error,
        "ParserError.node": lambda e: e._state["node"],
        "ParserError.node_name": lambda e: e._state["name"],
        "ParserError.node_operator": lambda e: e._state["op"],
        "ParserError.desc": lambda e: "Plugin not found",
        "Builder.build_serialized_network": lambda builder, network, config: b"serialized engine",
        "ITimingCache.serialize": lambda cache: b"timing cache",
    }


@pytest.fixture(scope="module")
def export_metadata(tiny_exports):
    return read_onnx_summary(tiny_exports["trt"]).metadata


def run_build(api, monkeypatch, options, **behaviours):
    standin = generate(api, builder_behaviours(**behaviours))
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", standin.module)
    try:
        return standin, build_engine(options)
    except (BuildError, ModelFileError) as exc:
        return standin, exc


def flag_names(standin, api):
    return [api_flag.name for (api_flag,) in standin.called("IBuilderConfig.set_flag")]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_builder_conforms(api, monkeypatch, tmp_path, export_metadata, precision):
    strongly_typed = int(api["version"].split(".")[0]) >= 11
    onnx_path = small_onnx(tmp_path / "m.onnx", export_metadata, qdq=precision == "int8",
                           fp16=strongly_typed and precision == "fp16")
    options = BuildOptions(onnx_path, str(tmp_path / "m.engine"), precision, timing_cache=str(tmp_path / "t.cache"),
                           dla_core=0)
    standin, metadata = run_build(api, monkeypatch, options)
    assert standin.violations == [] and isinstance(metadata, EngineMetadata), metadata
    (flags,) = standin.called("Builder.create_network")[0]
    stypes = api["enums"]["NetworkDefinitionCreationFlag"]
    assert bool(flags & (1 << stypes["STRONGLY_TYPED"])) == strongly_typed
    expected = {"fp32": [], "fp16": ["FP16"], "int8": ["FP16", "INT8"]}[precision]
    assert flag_names(standin, api) == ([] if strongly_typed else expected) + ["GPU_FALLBACK"]
    assert metadata.strongly_typed == strongly_typed and metadata.tensorrt_version == api["version"]
    assert (tmp_path / "m.engine").read_bytes() == b"serialized engine"
    assert metadata.engine_sha256 == hashlib.sha256(b"serialized engine").hexdigest()
    assert (tmp_path / "t.cache").read_bytes() == b"timing cache"
    assert standin.called("init_libnvinfer_plugins") and standin.called("IBuilderConfig.set_memory_pool_limit")
    assert standin.called("set IBuilderConfig.DLA_core") == [(0,)]


def test_builder_branches_per_version(api, monkeypatch, tmp_path, export_metadata):
    fp32_onnx = small_onnx(tmp_path / "m.onnx", export_metadata)
    standin, result = run_build(api, monkeypatch, BuildOptions(fp32_onnx, str(tmp_path / "e"), "fp16"))
    if int(api["version"].split(".")[0]) >= 11:  # no FP16 flag: an fp32 ONNX cannot become fp16
        assert isinstance(result, BuildError) and "strongly typed" in str(result)
        assert not standin.called("Builder.build_serialized_network")
    else:
        assert isinstance(result, EngineMetadata) and flag_names(standin, api) == ["FP16"]
    standin, result = run_build(api, monkeypatch, BuildOptions(fp32_onnx, str(tmp_path / "e"), "fp32"),
                                parse_ok=False)
    assert isinstance(result, BuildError) and standin.violations == []
    assert "node 3 'roi_align_2' ROIAlign_TRT: Plugin not found" in str(result)


def test_builder_optimization_profile(api, monkeypatch, tmp_path, export_metadata):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 128, 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 128, 128])])
    model = helper.make_model(graph)
    for key, value in export_metadata.items():
        model.metadata_props.add(key=key, value=value)
    save_onnx(model, str(tmp_path / "dyn.onnx"))
    options = BuildOptions(str(tmp_path / "dyn.onnx"), str(tmp_path / "e"), "fp32", batch_profile=(1, 2, 4))
    standin, metadata = run_build(api, monkeypatch, options)
    assert standin.violations == [] and isinstance(metadata, EngineMetadata), metadata
    assert standin.called("IOptimizationProfile.set_shape") == [
        ("images", (1, 3, 128, 128), (2, 3, 128, 128), (4, 3, 128, 128))]
    assert len(standin.called("IBuilderConfig.add_optimization_profile")) == 1


# ---------------------------------------------------------------- the detector
class FakeEngine:
    """An engine 'built' from an ONNX export: it declares the export's tensors, and
    executing it runs the export in ONNX Runtime on what the device buffers hold."""

    SERIALIZED = b"stand-in engine"

    def __init__(self, onnx_path, cudart: FakeCudart, int32_outputs=False):
        self.onnx = OnnxDetector(onnx_path, providers="cpu")
        self.cudart = cudart
        self.trt = None  # the stand-in module, set once it is generated (its enums answer the calls)
        session = self.onnx.session
        self.io = [(i.name, True, tuple(i.shape), "FLOAT") for i in session.get_inputs()]
        for o in session.get_outputs():
            kind = "FLOAT" if o.type == "tensor(float)" else ("INT32" if int32_outputs else "INT64")
            self.io.append((o.name, False, tuple(o.shape), kind))

    def behaviours(self):
        io = {name: (is_input, shape, kind) for name, is_input, shape, kind in self.io}
        names = [name for name, *_ in self.io]

        def execute(context, stream):
            addresses = context._state["addresses"]
            dtypes = {"FLOAT": np.float32, "INT32": np.int32, "INT64": np.int64}
            images = self.cudart.read(addresses["images"], io["images"][1], np.float32)
            windows = self.cudart.read(addresses["windows"], io["windows"][1], np.float32)
            for name, value in self.onnx.infer(images, windows).items():
                self.cudart.write(addresses[name], value.astype(dtypes[io[name][2]]))
            return True

        def set_address(context, name, pointer):
            context._state.setdefault("addresses", {})[name] = pointer
            return True

        return {
            "Runtime.deserialize_cuda_engine": lambda rt, data: (
                rt._owner.instance("ICudaEngine") if bytes(data) == self.SERIALIZED else None),
            "ICudaEngine.num_io_tensors": lambda engine: len(names),
            "ICudaEngine.get_tensor_name": lambda engine, i: names[i],
            "ICudaEngine.get_tensor_mode": lambda engine, n: (
                self.trt.TensorIOMode.INPUT if io[n][0] else self.trt.TensorIOMode.OUTPUT),
            "ICudaEngine.get_tensor_shape": lambda engine, n: io[n][1],
            "ICudaEngine.get_tensor_dtype": lambda engine, n: getattr(self.trt.DataType, io[n][2]),
            "ICudaEngine.create_execution_context": lambda engine, *a: engine._owner.instance("IExecutionContext"),
            "IExecutionContext.get_tensor_shape": lambda context, n: io[n][1],
            "IExecutionContext.set_tensor_address": set_address,
            "IExecutionContext.execute_async_v3": execute,
        }


def write_engine(tmp_path, onnx_path, version, capability="8.7", engine_sha256=None):
    engine = tmp_path / "model.engine"
    engine.write_bytes(FakeEngine.SERIALIZED)
    metadata = EngineMetadata(tensorrt_version=version, gpu_name="Stand-in GPU", compute_capability=capability,
                              precision="fp16", strongly_typed=False, onnx_sha256="x",
                              model=read_onnx_summary(onnx_path).metadata,
                              engine_sha256=hashlib.sha256(FakeEngine.SERIALIZED).hexdigest()
                              if engine_sha256 is None else engine_sha256)
    with open(metadata_path(str(engine)), "w") as f:
        json.dump(asdict(metadata), f)
    return str(engine)


def open_engine(api, engine, onnx_path, cudart, **fake):
    fake_engine = FakeEngine(onnx_path, cudart, **fake)
    standin = generate(api, fake_engine.behaviours())
    fake_engine.trt = standin.module
    detector = TrtDetector(engine, trt=standin.module, cuda=Cuda(cudart))
    return standin, detector


@pytest.mark.parametrize("target", ["trt", "onnx"])
def test_engine_detector_conforms_and_matches_pytorch(api, tmp_path, tiny_exports, synthetic_model, target):
    onnx_path = tiny_exports[target]
    engine = write_engine(tmp_path, onnx_path, api["version"])
    cudart = FakeCudart()
    standin, detector = open_engine(api, engine, onnx_path, cudart, int32_outputs=target == "onnx")
    assert detector.tensor_api and "tensor API" in detector.backend
    images = verification_images(128, count=3)
    ours = detector.detect(images)
    assert standin.violations == [], standin.violations
    assert len(standin.called("IExecutionContext.set_tensor_address")) == 7  # once per tensor, not per call
    batches = -(-3 // detector.info.batch_size)
    assert len(standin.called("IExecutionContext.execute_async_v3")) == batches
    for result, expected in zip(ours, synthetic_model.detect(images)):
        assert len(result) == len(expected) > 0
        agreement = match_detections(result, expected, box_tol=1, score_tol=1e-4, tie_tol=1e-5)
        assert agreement.problems(mean_mask_iou=0.98, min_mask_iou=0.5) == []
    detector.close()
    assert cudart.buffers == {} and cudart.streams == set()  # everything freed


def test_engine_from_another_version_or_gpu_is_refused(api, tmp_path, tiny_exports):
    onnx_path = tiny_exports["onnx"]
    engine = write_engine(tmp_path, onnx_path, "8.6.2")
    with pytest.raises(ModelFileError, match=rf"built with TensorRT 8.6.2, this is TensorRT {api['version']}; "
                                             r"rebuild it here: python -m export.to_trt"):
        open_engine(api, engine, onnx_path, FakeCudart())
    engine = write_engine(tmp_path, onnx_path, api["version"], capability="8.9")
    with pytest.raises(ModelFileError, match="compute capability 8.9.*this GPU is 8.7"):
        open_engine(api, engine, onnx_path, FakeCudart())
    engine = write_engine(tmp_path, onnx_path, api["version"])
    (tmp_path / "model.engine").write_bytes(b"corrupt")
    with pytest.raises(DamagedFileError, match=r"model.engine is damaged: its SHA-256 differs from the one recorded "
                                               r"in .*model.engine.json"):
        open_engine(api, engine, onnx_path, FakeCudart())
    engine = write_engine(tmp_path, onnx_path, api["version"], engine_sha256="")  # metadata from before hashes
    (tmp_path / "model.engine").write_bytes(b"corrupt")
    with pytest.raises(ModelFileError, match="could not deserialize"):
        open_engine(api, engine, onnx_path, FakeCudart())


# ---------------------------------------------------------------- the check itself can fail
def test_wrong_calls_are_caught(api):
    """Mistakes of the kind this check exists for, each refused as the real bindings would."""
    standin = generate(api)
    trt = standin.module
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    cases = [
        lambda: builder.create_network(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED, 0),  # one argument too many
        lambda: config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE),  # pool size missing
        lambda: config.set_memory_pool_limit(0, 1 << 30),  # an int where the enum is required
        lambda: trt.Runtime("logger"),  # a str where an ILogger is required
        lambda: setattr(config, "max_workspace_size", 1 << 30),  # removed in 10.0
        lambda: setattr(trt.Builder(logger).create_builder_config(), "num_optimization_profiles", 2),  # read-only
    ]
    for case in cases:
        with pytest.raises(ConformanceError):
            case()
    assert len(standin.violations) == len(cases)
    if int(api["version"].split(".")[0]) >= 11:
        with pytest.raises(AttributeError):
            trt.BuilderFlag.FP16  # noqa: B018  (removed in 11)


def mutant(module, old: str, new: str):
    """A copy of ``module`` with one deliberate mistake written into its source."""
    import importlib
    import inspect
    import sys
    import types

    source = inspect.getsource(importlib.import_module(module))
    assert old in source, old
    copy = types.ModuleType(module + "_mutant")
    sys.modules[copy.__name__] = copy  # dataclasses look their module up while the source runs
    try:
        exec(compile(source.replace(old, new), copy.__name__ + ".py", "exec"), copy.__dict__)
    finally:
        del sys.modules[copy.__name__]
    return copy


DETECTOR_MISTAKES = [
    ("self.context.set_tensor_address(name, tensor.device)", "self.context.set_tensor_address(tensor.device, name)"),
    ("self.context.execute_async_v3(self.stream)", "self.context.execute_async_v3(self.bindings)"),
    ('hasattr(self.engine, "num_io_tensors")', 'hasattr(self.engine, "num_io_tensor")'),  # a typo: binding API
]
BUILDER_MISTAKES = [  # (original, mistake, the TensorRT majors where it is wrong)
    ("config.set_flag(trt.BuilderFlag.FP16)", "config.set_flag(trt.BuilderFlag.FP16, True)", {10}),
    ('not hasattr(trt.BuilderFlag, "FP16")', "False", {11}),  # always the 10.x branch: 11 has no FP16 flag
    ("config.DLA_core = options.dla_core", "config.dla_core = options.dla_core", {10, 11}),
]


@pytest.mark.parametrize("old, new", DETECTOR_MISTAKES)
def test_a_wrong_call_in_the_detector_fails_the_check(api, tmp_path, tiny_exports, old, new):
    onnx_path = tiny_exports["onnx"]
    engine = write_engine(tmp_path, onnx_path, api["version"])
    fake_engine = FakeEngine(onnx_path, FakeCudart())
    standin = generate(api, fake_engine.behaviours())
    fake_engine.trt = standin.module
    detector_class = mutant("runtime.trt_runtime", old, new).TrtDetector
    with pytest.raises((ConformanceError, AttributeError)):
        detector_class(engine, trt=standin.module, cuda=Cuda(fake_engine.cudart)).detect(
            verification_images(128, count=1))


@pytest.mark.parametrize("old, new, wrong_in", BUILDER_MISTAKES)
def test_a_wrong_call_in_the_builder_fails_the_check(api, monkeypatch, tmp_path, export_metadata, old, new, wrong_in):
    """Each mistake fails on the versions where it is one, and only there."""
    build = mutant("runtime.trt_build", old, new).build_engine
    options = BuildOptions(small_onnx(tmp_path / "m.onnx", export_metadata, qdq=True), str(tmp_path / "e"), "int8",
                           dla_core=0)
    standin = generate(api, builder_behaviours())
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", standin.module)
    if int(api["version"].split(".")[0]) in wrong_in:
        with pytest.raises((ConformanceError, AttributeError)):
            build(options)
    else:
        build(options)
        assert standin.violations == []
