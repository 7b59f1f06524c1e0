"""GPU check: the exported model on a real GPU and TensorRT, against ONNX Runtime, in one short run.

    python -m benchmarks.gpu_check --dry-run                   # the plan; runs anywhere
    python -m benchmarks.gpu_check --output gpu_check.json     # on a machine with an NVIDIA GPU
    python -m benchmarks.gpu_check --wheels .whl --weights benchmarks/artifacts/shapes_r50.pt

Steps (each prints what it found; the whole run is meant to take under 8 minutes):
1. the GPU (nvidia-smi), and tensorrt / cuda-python: imported, else installed with pip
   (from --wheels DIR on a machine without network, else from the package index);
2. cuda-python on the real device: allocate, copy a buffer in and out through pinned
   memory, compare (runtime.cuda_api, what the engine detector uses);
3. the shapes model (--weights; without one, ResNet50 128x128 with random weights and
   every detection slot filled, said so in the report) exported for both targets;
4. with TensorRT: fp16 engines of both exports (runtime.trt_build; --precision adds
   others, int8 needs a Q/DQ ONNX, --int8-onnx), each run through runtime.open_model
   against the same ONNX in ONNX Runtime on the CPU, on the same images: matched
   detections, box and score differences, mask IoU; latency p50/p90 of both;
5. a report on stdout and, with --output, as JSON.
Without TensorRT, steps 1-3 still run and step 4 says it was skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WEIGHTS = os.path.join(HERE, "artifacts", "shapes_r50.pt")
PLAN = [
    "1. GPU and packages: nvidia-smi; import tensorrt and cuda-python (pip install if missing)",
    "2. cuda-python round trip on the device (malloc, pinned host memory, copies, compare)",
    "3. export the shapes model for --target onnx and --target trt",
    "4. build TensorRT engines ({precisions}) of both exports; open_model(engine) against ONNX Runtime "
    "on the same images: agreement and latency p50/p90",
    "5. report (stdout{output})",
]
# fp16 against fp32: what agreement means here (fp16 moves scores and boxes a little)
BOX_TOL_PX, SCORE_TOL, MEAN_MASK_IOU = 2.0, 0.02, 0.9


class CheckError(RuntimeError):
    """A step that cannot go on (no GPU, bad weights); the message says which and why."""


def gpu_info() -> Dict[str, str]:
    if shutil.which("nvidia-smi") is None:
        raise CheckError("no NVIDIA GPU here (nvidia-smi not found): run this on the GPU machine")
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                           "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    if done.returncode or not done.stdout.strip():
        raise CheckError(f"nvidia-smi found no usable GPU: {(done.stderr or done.stdout).strip()}")
    name, driver, capability, memory = (v.strip() for v in done.stdout.splitlines()[0].split(","))
    return {"gpu": name, "driver": driver, "compute_capability": capability, "memory": memory}


def ensure_package(module: str, requirement: str, wheels: Optional[str]) -> Optional[str]:
    """The installed version of ``requirement`` once ``module`` imports, installing it with
    pip first if it does not; None if it cannot be had."""
    from importlib.metadata import PackageNotFoundError, version

    for attempt in ("import", "install"):
        try:
            importlib.import_module(module)
            try:
                return version(requirement)
            except PackageNotFoundError:  # installed another way (JetPack's apt packages)
                return "installed"
        except (ImportError, OSError) as exc:
            if attempt == "install":
                print(f"  {module} does not import: {exc}", flush=True)
                return None
        command = [sys.executable, "-m", "pip", "install", "--quiet", requirement]
        if wheels:
            command += ["--no-index", "--find-links", wheels]
        print(f"  installing {requirement}: {' '.join(command)}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode:
            print(f"  could not install {requirement}: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            return None
        importlib.invalidate_caches()
    return None


def cuda_round_trip() -> Dict[str, object]:
    from runtime.cuda_api import Cuda, host_array

    cuda = Cuda()
    name, capability = cuda.device_properties(0)
    data = np.arange(1 << 20, dtype=np.float32)
    stream, device = cuda.stream(), cuda.malloc(data.nbytes)
    pinned_in, pinned_out = cuda.malloc_host(data.nbytes), cuda.malloc_host(data.nbytes)
    try:
        source, target = host_array(pinned_in, data.shape, data.dtype), host_array(pinned_out, data.shape, data.dtype)
        source[:] = data
        target[:] = 0
        cuda.copy_to_device(device, pinned_in, data.nbytes, stream)
        cuda.copy_to_host(pinned_out, device, data.nbytes, stream)
        cuda.synchronize(stream)
        same = bool(np.array_equal(target, data))
    finally:
        cuda.free(device)
        cuda.free_host(pinned_in)
        cuda.free_host(pinned_out)
        cuda.destroy_stream(stream)
    return {"device": name, "compute_capability": capability, "round_trip_equal": same}


def load_model(weights: Optional[str]):
    """(MaskRCNN, class names, description) for the check."""
    import torch

    from model.config import Config
    from model.detect import load_any
    from model.maskrcnn import MaskRCNN

    if weights:
        model, names = load_any(weights, None)
        return model, names, f"weights {weights}"
    config = Config(NAME="gpu_check", BACKBONE="resnet50", NUM_CLASSES=4, IMAGES_PER_GPU=1, IMAGE_MIN_DIM=128,
                    IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), DETECTION_MIN_CONFIDENCE=0.0)
    torch.manual_seed(0)
    return (MaskRCNN(config).eval(), ["BG", "square", "circle", "triangle"],
            "random weights (no checkpoint given or found): agreement is checked, not accuracy")


def compare_backends(engine_path: str, onnx_path: str, images: List[np.ndarray], runs: int) -> Dict[str, object]:
    from benchmarks.common import time_it
    from calibration.agreement import agreement_of
    from runtime import open_model
    from runtime.video import percentiles

    engine, reference = open_model(engine_path), open_model(onnx_path, providers="cpu")
    try:
        agreement = agreement_of(onnx_path, engine_path, reference.detect(images), engine.detect(images),
                                 BOX_TOL_PX, SCORE_TOL)
        unmatched = agreement.reference_detections - agreement.matched + agreement.extra
        molded = engine.mold(images[:1])
        fill = np.zeros(engine.info.batch_size, np.int64)  # one image, repeated to the engine's batch
        args = (molded.images[fill], molded.windows[fill].astype(np.float32))
        trt_time = time_it("engine", lambda: engine.infer(*args), runs, 3)
        ort_time = time_it("onnxruntime", lambda: reference.infer(*args), max(3, runs // 5), 1)
        mean_iou = agreement.mean_mask_iou
        return {"backend": engine.backend, "matched": agreement.matched, "unmatched": unmatched,
                "max_box_diff_px": agreement.max_box_diff, "max_score_diff": agreement.max_score_diff,
                "mean_mask_iou": mean_iou, "agrees": unmatched == 0 and mean_iou >= MEAN_MASK_IOU,
                "engine_infer_ms": percentiles(1e3 * np.array(trt_time.runs)),
                "onnxruntime_cpu_infer_ms": percentiles(1e3 * np.array(ort_time.runs))}
    finally:
        engine.close()


def run_check(args) -> Dict[str, object]:
    report: Dict[str, object] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print("1. GPU and packages", flush=True)
    report["gpu"] = gpu_info()
    report["tensorrt"] = ensure_package("tensorrt", "tensorrt-cu12", args.wheels)
    report["cuda_python"] = ensure_package("cuda", "cuda-python", args.wheels)
    print(f"   {report['gpu']}; tensorrt {report['tensorrt']}; cuda-python {report['cuda_python']}", flush=True)
    print("2. cuda-python round trip", flush=True)
    report["cuda"] = cuda_round_trip()
    print(f"   {report['cuda']}", flush=True)
    print("3. export", flush=True)
    from export.to_onnx import export_model
    from export.verify import verification_images
    from runtime.trt_build import BuildOptions, build_engine

    model, names, described = load_model(args.weights)
    report["model"] = described
    folder = tempfile.mkdtemp(prefix="gpu_check_")
    exports = {}
    for target in ("onnx", "trt"):
        exports[target] = os.path.join(folder, f"model_{target}.onnx")
        export_model(model, exports[target], target, names)
        print(f"   {exports[target]}", flush=True)
    report["results"] = {}
    if report["tensorrt"] is None:
        print("4. skipped: TensorRT is not installed here (pass --wheels DIR with tensorrt wheels)", flush=True)
        return report
    images = verification_images(model.config.IMAGE_MAX_DIM, count=4, seed=77)
    onnx_for = {"fp32": exports, "fp16": exports, "int8": {"onnx": args.int8_onnx} if args.int8_onnx else {}}
    for precision in args.precision:
        for target, onnx_path in onnx_for[precision].items():
            key = f"{target}/{precision}"
            print(f"4. {key}: build", flush=True)
            engine = os.path.join(folder, f"model_{target}_{precision}.engine")
            try:
                metadata = build_engine(BuildOptions(onnx_path, engine, precision, workspace_mb=4096))
                result = compare_backends(engine, onnx_path, images, args.runs)
                result["build_seconds"] = metadata.build_seconds
            except Exception as exc:  # report every engine, not only the first failure
                result = {"error": f"{type(exc).__name__}: {exc}"}
            report["results"][key] = result
            print(f"   {json.dumps(result, default=str)}", flush=True)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help=f"checkpoint to export (default: {os.path.relpath(DEFAULT_WEIGHTS)} "
                                          f"if it exists, else random weights)")
    parser.add_argument("--wheels", help="folder of wheels (tensorrt, cuda-python) for a machine without network")
    parser.add_argument("--precision", nargs="+", default=["fp16"], choices=["fp32", "fp16", "int8"])
    parser.add_argument("--int8-onnx", help="a Q/DQ ONNX (from calibration/) to build the int8 engine from")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each engine")
    parser.add_argument("--output", help="write the report here as JSON")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    if args.weights is None and os.path.isfile(DEFAULT_WEIGHTS):
        args.weights = DEFAULT_WEIGHTS
    if args.weights and not os.path.isfile(args.weights):
        print(f"error: {args.weights}: weights file not found", file=sys.stderr)
        return 2
    if "int8" in args.precision and not args.int8_onnx:
        print("error: --precision int8 needs --int8-onnx (a Q/DQ ONNX: TensorRT 11 has no calibrators)",
              file=sys.stderr)
        return 2
    if args.dry_run:
        output = f", {args.output}" if args.output else ""
        print("\n".join(line.format(precisions=", ".join(args.precision), output=output) for line in PLAN))
        print(f"model: {args.weights or 'random weights (no checkpoint found)'}")
        return 0
    try:
        report = run_check(args)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=1, default=str)
    print("5. report\n" + text)
    if args.output:
        from runtime.files import write_text_atomic

        write_text_atomic(args.output, text)
        print(f"wrote {args.output}")
    failed = [key for key, result in report["results"].items() if not result.get("agrees")]
    return 1 if failed or not report["cuda"]["round_trip_equal"] else 0


if __name__ == "__main__":
    sys.exit(main())
