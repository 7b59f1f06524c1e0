"""Build a TensorRT engine from an exported ONNX file, on the machine that will run it
(a Jetson builds its own). Torch-free: needs tensorrt, numpy, and onnx (to read the
model metadata and node names).

Versions are told apart by feature, not by version string:
- TensorRT 8.5 to 10.x (JetPack 5/6, servers): ``BuilderFlag.FP16`` exists, so fp16 sets
  it and int8 sets INT8 + FP16 on an ONNX that already holds Q/DQ nodes (explicit
  quantization; there is no calibrator here).
- TensorRT 11 (JetPack 7, servers): the precision flags are gone; the network is built
  strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``), so the ONNX itself
  must be fp16 or Q/DQ.

It cannot build here (no GPU, no TensorRT libraries). Its argument handling and the
no-TensorRT path are tested directly, and every TensorRT call it makes is checked against
the real Python bindings of TensorRT 10.3, 10.16 and 11.4 through generated stand-ins
(tests/runtime/test_trt_conformance.py): names, signatures and the branch each version
takes, not what TensorRT then builds.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from runtime.files import atomic_path, check_output_path, write_text_atomic
from runtime.integrity import check_onnx_file, sha256_file
from runtime.model_info import ModelFileError, ModelInfo

PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTUnavailableError(RuntimeError):
    """tensorrt cannot be imported; the message carries the equivalent trtexec command."""


class BuildError(RuntimeError):
    """The ONNX could not be parsed or built; the message names the node or the cause."""


@dataclass
class BuildOptions:
    onnx: str
    output: str
    precision: str = "fp16"
    workspace_mb: int = 4096
    timing_cache: Optional[str] = None
    dla_core: Optional[int] = None
    verbose: bool = False
    batch_profile: Optional[Tuple[int, int, int]] = None  # (min, opt, max) for a dynamic batch dimension

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.workspace_mb <= 0:
            raise ValueError(f"workspace must be positive, got {self.workspace_mb} MB")
        if self.dla_core is not None and self.dla_core < 0:
            raise ValueError(f"DLA core must be >= 0, got {self.dla_core}")
        if self.batch_profile is not None:
            low, opt, high = self.batch_profile
            if not 1 <= low <= opt <= high:
                raise ValueError(f"batch profile must be 1 <= min <= opt <= max, got {self.batch_profile}")


# {input name: (min shape, opt shape, max shape)} of an optimization profile
ProfileShapes = Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]]


@dataclass
class OnnxSummary:
    """What the builder needs to know of an ONNX file before TensorRT parses it."""

    sha256: str
    metadata: Dict[str, str]
    node_names: List[str]
    has_qdq: bool
    is_fp16: bool
    inputs: Dict[str, List[Optional[int]]]  # None marks a dynamic dimension


@dataclass
class EngineMetadata:
    """Written beside the engine as ``<engine>.json`` and checked when it is loaded."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    strongly_typed: bool
    onnx_sha256: str
    model: Dict[str, str]
    engine_sha256: str = ""  # of the engine file, checked before it is deserialized (empty: older metadata)
    build_seconds: float = 0.0
    built_at: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))

    def model_info(self, source: str) -> ModelInfo:
        return ModelInfo.from_metadata(self.model, source)


def metadata_path(engine_path: str) -> str:
    return engine_path + ".json"


def trtexec_command(options: BuildOptions, shapes: Optional[ProfileShapes] = None) -> str:
    """The trtexec line equivalent to ``options`` (TensorRT 8.5 to 10.x syntax)."""
    parts = ["trtexec", f"--onnx={options.onnx}", f"--saveEngine={options.output}",
             f"--memPoolSize=workspace:{options.workspace_mb}M"]
    for index, flag in enumerate(("--minShapes", "--optShapes", "--maxShapes") if shapes else ()):
        parts.append(flag + "=" + ",".join(f"{name}:{'x'.join(map(str, dims[index]))}"
                                           for name, dims in shapes.items()))
    parts += {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}[options.precision]
    if options.timing_cache:
        parts.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        parts += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    if options.verbose:
        parts.append("--verbose")
    return " ".join(shlex.quote(p) for p in parts)


def import_tensorrt(options: BuildOptions, shapes: Optional[ProfileShapes] = None):
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the bindings install but libnvinfer is missing
        raise TensorRTUnavailableError(
            f"TensorRT is not available here ({exc}). Build on the target GPU or Jetson, where JetPack or "
            f"NVIDIA's pip index provides it, or run the equivalent command there:\n"
            f"  {trtexec_command(options, shapes)}\n"
            f"(TensorRT 11's trtexec: drop --fp16/--int8 and pass --stronglyTyped with an fp16 or Q/DQ ONNX.)"
        ) from exc
    return trt


def read_onnx_summary(path: str) -> OnnxSummary:
    try:
        import onnx
    except ImportError as exc:
        raise ModelFileError("the onnx package is needed to read the model: pip install onnx") from exc
    with open(path, "rb") as f:
        data = f.read()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf decode errors
        raise ModelFileError(f"{path}: not a readable ONNX file ({exc})") from exc
    graph = model.graph
    fp16 = onnx.TensorProto.FLOAT16
    inputs = {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
              for i in graph.input}
    return OnnxSummary(
        sha256=hashlib.sha256(data).hexdigest(), metadata={p.key: p.value for p in model.metadata_props},
        node_names=[n.name or n.op_type for n in graph.node],
        has_qdq=any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node),
        is_fp16=any(i.type.tensor_type.elem_type == fp16 for i in graph.input)
        or any(t.data_type == fp16 for t in graph.initializer),
        inputs=inputs)


def profile_shapes(options: BuildOptions, inputs: Dict[str, List[Optional[int]]]) -> Optional[ProfileShapes]:
    """The optimization profile for an ONNX with a dynamic batch dimension (None when every
    input is static, as this project's exports are: their batch is fixed at export)."""
    dynamic = {name: dims for name, dims in inputs.items() if any(d is None for d in dims)}
    if not dynamic:
        batches = {dims[0] for dims in inputs.values() if dims}
        if options.batch_profile and set(options.batch_profile) != batches:
            raise BuildError(f"{options.onnx} has a fixed batch of {sorted(batches)}, not the batch profile "
                             f"{options.batch_profile}: re-export with python -m export.to_onnx --batch N")
        return None
    if options.batch_profile is None:
        raise BuildError(f"{options.onnx} has a dynamic batch dimension: pass --batch-profile MIN,OPT,MAX")
    shapes = {}
    for name, dims in dynamic.items():
        if any(d is None for d in dims[1:]):
            raise BuildError(f"{options.onnx}: input {name!r} {dims} is dynamic beyond the batch dimension; "
                             f"export it with a fixed input size")
        shapes[name] = tuple((batch, *dims[1:]) for batch in options.batch_profile)
    return shapes


def gpu_description() -> Dict[str, str]:
    """GPU name and compute capability: cuda-python, else nvidia-smi, else Jetson's
    device tree; "unknown" when none answers."""
    from runtime.cuda_api import gpu_description as cuda_gpu

    found = cuda_gpu()
    if found:
        return found
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()[0]
        name, capability = (s.strip() for s in out.split(","))
        return {"gpu_name": name, "compute_capability": capability}
    except Exception:  # no nvidia-smi (Jetson) or no GPU
        pass
    try:
        with open("/proc/device-tree/model") as f:
            return {"gpu_name": f.read().strip("\x00\n "), "compute_capability": "unknown"}
    except OSError:
        return {"gpu_name": "unknown", "compute_capability": "unknown"}


def parser_errors(parser, node_names: List[str]) -> str:
    """One line per parser error, naming the ONNX node (TensorRT 10 reports the name;
    8.x only the index, resolved through the ONNX file)."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        index = error.node()
        name = error.node_name() if hasattr(error, "node_name") else (
            node_names[index] if 0 <= index < len(node_names) else "?")
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        lines.append(f"  node {index} {name!r} {operator}: {error.desc()}")
    return "\n".join(lines)


def build_engine(options: BuildOptions) -> EngineMetadata:
    """Parse, configure, build and write the engine and its metadata (atomically)."""
    # everything that can be checked without TensorRT is checked first
    if os.path.isdir(options.onnx):
        raise ModelFileError(f"{options.onnx} is a directory, not an ONNX file")
    if not os.path.isfile(options.onnx):
        raise ModelFileError(f"{options.onnx}: ONNX file not found")
    check_output_path(options.output, "engine")
    summary = read_onnx_summary(options.onnx)
    ModelInfo.from_metadata(summary.metadata, options.onnx)  # fail now if it is not our export
    check_onnx_file(options.onnx)
    shapes = profile_shapes(options, summary.inputs)
    trt = import_tensorrt(options, shapes)
    logger = trt.Logger(trt.Logger.VERBOSE if options.verbose else trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # ROIAlign_TRT, EfficientNMS_TRT
    builder = trt.Builder(logger)
    strongly_typed = not hasattr(trt.BuilderFlag, "FP16")  # TensorRT 11 removed the precision flags
    _check_precision(options, strongly_typed, summary.has_qdq, summary.is_fp16)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # required by 8.x, ignored by 10.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(options.onnx):
        raise BuildError(f"{options.onnx}: TensorRT's ONNX parser failed:\n"
                         f"{parser_errors(parser, summary.node_names)}")
    config = builder.create_builder_config()
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    workspace = options.workspace_mb << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:  # before 8.4
        config.max_workspace_size = workspace
    if not strongly_typed and options.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if not strongly_typed and options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache = _load_timing_cache(config, options.timing_cache)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"{options.onnx}: TensorRT could not build the engine (run with --verbose for the log)")
    seconds = time.perf_counter() - start
    with atomic_path(options.output) as tmp, open(tmp, "wb") as f:
        f.write(serialized)
    engine_sha256 = sha256_file(options.output)
    if cache is not None:
        with atomic_path(options.timing_cache) as tmp, open(tmp, "wb") as f:
            f.write(config.get_timing_cache().serialize())
    metadata = EngineMetadata(tensorrt_version=trt.__version__, precision=options.precision,
                              strongly_typed=strongly_typed, onnx_sha256=summary.sha256, model=summary.metadata,
                              engine_sha256=engine_sha256,
                              build_seconds=seconds, **gpu_description())
    write_text_atomic(metadata_path(options.output), json.dumps(asdict(metadata), indent=1))
    return metadata


def _check_precision(options: BuildOptions, strongly_typed: bool, has_qdq: bool, is_fp16: bool) -> None:
    qdq_hint = ("INT8 needs explicit quantization: an ONNX with Q/DQ nodes, made on the CPU with a calibration set "
                "(this project's calibration/ step, or NVIDIA ModelOpt's ONNX post-training quantization)")
    if options.precision == "int8" and not has_qdq:
        raise BuildError(f"{options.onnx} has no QuantizeLinear/DequantizeLinear nodes. {qdq_hint}")
    if strongly_typed and options.precision == "fp16" and not is_fp16:
        raise BuildError(f"{options.onnx} is fp32, and this TensorRT (11 or later) builds strongly typed networks "
                         f"without an FP16 flag: convert the ONNX to fp16 first (NVIDIA ModelOpt AutoCast: "
                         f"python -m modelopt.onnx.autocast), then build it")


def _load_timing_cache(config, path: Optional[str]):
    if not path:
        return None
    data = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def read_metadata(engine_path: str) -> EngineMetadata:
    """The metadata written beside an engine; ModelFileError when missing or invalid."""
    path = metadata_path(engine_path)
    try:
        with open(path, encoding="utf8") as f:
            values = json.load(f)
        return EngineMetadata(**{k: v for k, v in values.items() if k in EngineMetadata.__dataclass_fields__})
    except FileNotFoundError:
        raise ModelFileError(f"{path}: engine metadata missing; rebuild with python -m export.to_trt") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid engine metadata ({exc})") from exc


def check_engine_compatible(engine_path: str, tensorrt_version: str,
                            gpu: Optional[Dict[str, str]] = None) -> EngineMetadata:
    """Refuse an engine built by another TensorRT version or for another GPU, with a
    message that says how to rebuild (engines are not portable across either)."""
    metadata = read_metadata(engine_path)
    rebuild = f"rebuild it here: python -m export.to_trt --onnx MODEL.onnx --precision {metadata.precision}"
    if metadata.tensorrt_version != tensorrt_version:
        raise ModelFileError(f"{engine_path} was built with TensorRT {metadata.tensorrt_version}, this is "
                             f"TensorRT {tensorrt_version}; {rebuild}")
    if gpu and "unknown" not in (gpu.get("compute_capability"), metadata.compute_capability) and \
            gpu["compute_capability"] != metadata.compute_capability:
        raise ModelFileError(f"{engine_path} was built for compute capability {metadata.compute_capability} "
                             f"({metadata.gpu_name}), this GPU is {gpu['compute_capability']} ({gpu['gpu_name']}); "
                             f"{rebuild}")
    return metadata
