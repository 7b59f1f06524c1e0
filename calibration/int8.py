"""INT8 models: explicit quantization (Q/DQ) of an exported Mask R-CNN, calibrated on the CPU.

    python -m calibration.int8 --onnx shapes.onnx --data shapes --num-images 64
    python -m calibration.int8 --onnx shapes.onnx shapes_trt.onnx --data photos/ --method percentile
    python -m calibration.int8 --onnx coco.onnx --data coco:/data/coco/annotations/instances_val2017.json \\
        --num-images 200 --keep-float node_Conv_17,node_Conv_18

From one calibration (ranges of every tensor the quantized ops read, on images molded
as the runtime molds them) it writes two forms of each model:

- ``NAME.int8.onnx``, for TensorRT (every version: 8.5-10.x with the INT8 flag, 11.x
  strongly typed): symmetric INT8 activations and weights (zero point 0), weights per
  output channel, on the inputs of Conv, ConvTranspose, Gemm and MatMul only. RoI
  pooling, NMS, softmax/sigmoid and the box decoding stay in float.
- ``NAME.int8-cpu.onnx``, for ONNX Runtime on a CPU: the same ranges as unsigned
  asymmetric activations (ONNX Runtime's fast CPU kernels take u8 activations), with
  the residual and FPN additions, ReLUs and upsampling quantized too, so that whole
  convolution chains fuse into QLinearConv / QLinearAdd instead of running as float
  ops between Q/DQ pairs (see the README for what fuses and why).

The ranges are cached as ``NAME.int8.ranges.json`` beside the output and reused (also
for the other export target of the same weights) unless --recalibrate. A ``--target
trt`` export cannot run in ONNX Runtime's calibrator (plugin nodes), so it takes the
ranges of the ``--target onnx`` export given with it: both graphs share every quantized
tensor, so they carry the same scales.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from calibration.data import CalibrationDataError, CalibrationSet, calibration_set
from calibration.graph import (
    NETWORK,
    WEIGHTED,
    float_inputs_for_float_ops,
    load_onnx,
    model_info,
    prepare_for_quantization,
    quantizable_nodes,
    weighted_input_names,
)
from runtime.files import atomic_path, check_output_path
from runtime.integrity import save_onnx
from runtime.model_info import ModelFileError, ModelInfo
from runtime.progress import Progress

METHODS = ("entropy", "percentile", "minmax")
FORMS = ("tensorrt", "cpu")
CHUNK = 4  # images per calibration pass: ONNX Runtime's calibrators hold every output of a pass in memory


@dataclass
class QuantizedModel:
    form: str
    path: str
    quantized_nodes: int
    size_bytes: int


@dataclass
class Int8Report:
    source: str
    ranges: str
    calibrated: bool  # False: the ranges came from the cache
    calibration: str
    seconds: float
    models: List[QuantizedModel] = field(default_factory=list)


def ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    return {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
            "minmax": CalibrationMethod.MinMax}[method]


def output_paths(onnx_path: str, output: Optional[str] = None) -> Dict[str, str]:
    """{"tensorrt": ..., "cpu": ..., "ranges": ...} beside ``output`` (default: beside the ONNX)."""
    base = output[: -len(".onnx")] if output and output.endswith(".onnx") else (output or onnx_path[: -len(".onnx")])
    if base.endswith(".int8"):
        base = base[: -len(".int8")]
    return {"tensorrt": base + ".int8.onnx", "cpu": base + ".int8-cpu.onnx", "ranges": base + ".int8.ranges.json"}


def make_calibrator(model_path: str, method: str, tensors: Sequence[str], augmented_path: str):
    """ONNX Runtime's calibrator for ``method``, collecting only ``tensors`` (the stock one
    takes every input and output of an op type: the box decoding's additions, whose
    values can be infinite for an untrained model, among them)."""
    from onnxruntime.quantization.calibrate import EntropyCalibrater, MinMaxCalibrater, PercentileCalibrater

    base = {"entropy": EntropyCalibrater, "percentile": PercentileCalibrater, "minmax": MinMaxCalibrater}[method]
    wanted = set(tensors)

    class Selected(base):
        def select_tensors_to_calibrate(self, model):
            found, value_infos = super().select_tensors_to_calibrate(model)
            return found & wanted, value_infos

    # asymmetric ranges: the TensorRT form's quantizer makes them symmetric itself
    options = {"minmax": {}, "entropy": {"num_bins": 128, "num_quantized_bins": 128},
               "percentile": {"num_bins": 2048, "percentile": 99.999}}[method]
    calibrator = Selected(model_path, list(NETWORK), augmented_path, symmetric=False, **options)
    calibrator.augment_graph()
    calibrator.create_inference_session()
    return calibrator


def calibrate(onnx_path: str, data: CalibrationSet, method: str, cache_path: str) -> None:
    """Run ONNX Runtime's calibrator over ``data`` in chunks and write the ranges of the
    tensors the quantized nodes of either form read or write to ``cache_path`` (JSON)."""
    from onnxruntime.quantization import CalibrationDataReader, save_tensors_data

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    graph = load_onnx(onnx_path, False)
    names = set(quantizable_nodes(graph, "cpu"))
    tensors = {t for node in graph.graph.node if node.name in names for t in list(node.input) + list(node.output)}
    progress = Progress(data.num_images, f"calibrating ({method})")
    with tempfile.TemporaryDirectory(prefix="calibration.") as folder:
        calibrator = make_calibrator(onnx_path, method, tensors, os.path.join(folder, "augmented.onnx"))
        per_chunk = max(1, CHUNK // len(data.feeds[0]["images"]))
        for start in range(0, len(data.feeds), per_chunk):
            chunk = data.feeds[start:start + per_chunk]
            calibrator.collect_data(Reader(chunk))
            progress.update(sum(len(f["images"]) for f in chunk))
        progress.close()
        try:
            ranges = calibrator.compute_data()
        except ValueError as exc:  # e.g. "supplied range of [-inf, inf] is not finite"
            raise CalibrationDataError(f"{onnx_path}: calibration met values it cannot bin ({exc}): the network "
                                       f"produces inf/NaN on these images") from exc
        del calibrator
    with atomic_path(cache_path) as tmp:
        save_tensors_data(ranges, tmp)


def ranges_for(prepared: str, calibrated: str, cache_path: str, output: str) -> str:
    """The cached ranges of ``calibrated`` renamed to the tensors of ``prepared`` (another
    export of the same weights): the activation input of the k-th weighted node of one
    graph is that of the k-th of the other. Written to ``output``; returns it."""
    from onnxruntime.quantization import TensorsData, load_tensors_data, save_tensors_data

    ours, theirs = (weighted_input_names(load_onnx(p, False)) for p in (prepared, calibrated))
    if len(ours) != len(theirs):
        raise ModelFileError(f"{prepared} has {len(ours)} convolutions and matrix products, the calibrated export "
                             f"{len(theirs)}: not the same network")
    cached = load_tensors_data(cache_path)
    missing = [name for name in theirs if name not in cached.data]
    if missing:
        raise ModelFileError(f"{cache_path} lacks the ranges of {missing[:3]}: recalibrate (--recalibrate)")
    renamed = TensorsData(cached.calibration_method, {mine: cached.data[name] for mine, name in zip(ours, theirs)})
    save_tensors_data(renamed, output)
    return output


def check_same_weights(reference: ModelInfo, other: ModelInfo, path: str) -> None:
    """Refuse to share ranges between exports of different networks (the batch may differ)."""
    keys = ("NUM_CLASSES", "BACKBONE", "IMAGE_MAX_DIM", "TOP_DOWN_PYRAMID_SIZE", "FPN_CLASSIF_FC_LAYERS_SIZE")
    differ = [k for k in keys if reference.config.get(k) != other.config.get(k)]
    if differ:
        raise ModelFileError(f"{path} is not the same network as the calibrated export ({', '.join(differ)} differ)")


def quantize_form(prepared_path: str, output: str, form: str, cache_path: str, method: str,
                  keep_float: Sequence[str]) -> QuantizedModel:
    """Write the ``form`` ("tensorrt" or "cpu") Q/DQ model of an already prepared graph."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    graph = onnx.load(prepared_path)
    kept = set(keep_float)
    nodes = [n for n in quantizable_nodes(graph, form) if n not in kept]
    unknown = sorted(kept - {n.name for n in graph.graph.node})
    if unknown:
        raise ValueError(f"--keep-float names nodes the graph does not have: {unknown[:5]}")
    symmetric = form == "tensorrt"
    with tempfile.TemporaryDirectory() as scratch:
        tmp = os.path.join(scratch, "quantized.onnx")
        quantize_static(
            prepared_path, tmp, calibration_data_reader=None, calibration_cache_path=cache_path,
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes, calibrate_method=ort_method(method),
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True, "DedicatedQDQPair": True,
                           "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # B is [in, out]: out is axis 1
                           "QDQKeepRemovableActivations": symmetric,
                           # TensorRT: inputs only, outputs stay float (TensorRT decides the output precision)
                           "OpTypesToExcludeOutputQuantization": list(WEIGHTED) if symmetric else []})
        quantized = onnx.load(tmp)
        if symmetric:  # TensorRT: only the convolutions' and matrix products' inputs are quantized
            float_inputs_for_float_ops(quantized, nodes)
        for prop in graph.metadata_props:  # the runtime reads class names, molding, size from here
            quantized.metadata_props.add(key=prop.key, value=prop.value)
        quantized.metadata_props.add(key="mrcnn.precision", value=f"int8-{form}")
        save_onnx(quantized, output)
    return QuantizedModel(form, output, len(nodes), os.path.getsize(output))


def run(onnx_paths: Sequence[str], data_spec: str, num_images: int, method: str, output: Optional[str],
        recalibrate: bool, keep_float: Sequence[str], forms: Sequence[str] = FORMS) -> List[Int8Report]:
    """Calibrate on the first ONNX Runtime-runnable export, quantize every given export."""

    infos = {path: model_info(load_onnx(path, False), path) for path in onnx_paths}
    calibrated_on = next((p for p in onnx_paths if infos[p].target == "onnx"), None)
    if calibrated_on is None:
        raise ModelFileError(f"{onnx_paths[0]} is a --target trt export, whose plugin nodes ONNX Runtime's calibrator "
                             f"cannot run: give the --target onnx export of the same weights with it, "
                             f"e.g. --onnx model.onnx {onnx_paths[0]}")
    for path in onnx_paths:
        check_same_weights(infos[calibrated_on], infos[path], path)
    single_output = output if len(onnx_paths) == 1 else None
    cache = output_paths(calibrated_on, single_output)["ranges"]
    for path in onnx_paths:  # before the calibration, not after it
        for kind, written in output_paths(path, single_output).items():
            if kind != "ranges":  # read when present, written (atomically) beside the models
                check_output_path(written)
    reports = []
    with tempfile.TemporaryDirectory(prefix="int8.") as folder:
        reference = prepare_for_quantization(calibrated_on, os.path.join(folder, "calibrated.onnx"))
        for index, path in enumerate([calibrated_on] + [p for p in onnx_paths if p != calibrated_on]):
            start = time.perf_counter()
            report = Int8Report(path, cache, False, f"ranges from {cache}", 0.0)
            if index == 0:
                prepared, ranges = reference, cache
                if recalibrate or not os.path.isfile(cache):
                    data = calibration_set(data_spec, infos[path], num_images)
                    calibrate(prepared, data, method, cache)
                    report.calibrated, report.calibration = True, data.description
            else:
                prepared = prepare_for_quantization(path, os.path.join(folder, f"other{index}.onnx"))
                ranges = ranges_for(prepared, reference, cache, os.path.join(folder, f"ranges{index}.json"))
                report.calibration += f" (the same scales as {calibrated_on})"
            paths = output_paths(path, single_output)
            for form in forms:
                if form == "cpu" and infos[path].target != "onnx":
                    continue  # plugin graphs run on TensorRT only
                report.models.append(quantize_form(prepared, paths[form], form, ranges, method, keep_float))
            report.seconds = time.perf_counter() - start
            reports.append(report)
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.int8", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", nargs="+", required=True, help="exports of one model (python -m export.to_onnx)")
    parser.add_argument("--data", default="shapes", help="shapes | coco:INSTANCES.json | a folder of images")
    parser.add_argument("--num-images", type=int, default=64, help="calibration images")
    parser.add_argument("--method", default="entropy", choices=METHODS)
    parser.add_argument("--output", help="output name for a single --onnx (default: beside it, NAME.int8.onnx)")
    parser.add_argument("--recalibrate", action="store_true", help="ignore the cached ranges")
    parser.add_argument("--keep-float", default="", help="comma-separated node names to leave in float "
                                                         "(see python -m calibration.layers)")
    args = parser.parse_args(argv)
    if args.output and len(args.onnx) > 1:
        parser.error("--output takes a single --onnx; with several, outputs are written beside each")
    keep = [n for n in args.keep_float.split(",") if n]
    try:
        reports = run(args.onnx, args.data, args.num_images, args.method, args.output, args.recalibrate, keep)
    except (ModelFileError, CalibrationDataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for report in reports:
        origin = "calibrated on " + report.calibration if report.calibrated else report.calibration
        print(f"{report.source}: {origin} ({report.seconds:.0f} s)")
        for model in report.models:
            print(f"  wrote {model.path} ({model.form}, {model.quantized_nodes} nodes quantized, "
                  f"{model.size_bytes / 1e6:.1f} MB)")
    first = reports[0].models[0].path
    print(f"next: python -m calibration.layers --onnx {reports[0].source} --int8 {first}   (per-layer error)\n"
          f"      python -m export.to_trt --onnx {first} --precision int8   (on the GPU / Jetson)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
