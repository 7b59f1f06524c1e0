"""Build a TensorRT engine from an exported ONNX file (run it on the target GPU/Jetson).

    python -m export.to_trt --onnx model_trt.onnx --precision fp16 --output model.engine
    python -m export.to_trt --onnx model_qdq.onnx --precision int8 --timing-cache trt.cache
    python -m export.to_trt --onnx model_trt.onnx --precision fp16 --dla-core 0    # Jetson DLA
    python -m export.to_trt --onnx dynamic.onnx --batch-profile 1,2,4              # a dynamic-batch ONNX

The builder itself is runtime/trt_build.py (torch-free, so a Jetson with only the
runtime, TensorRT and the ONNX file can build). It detects the TensorRT version by
feature (precision flags up to 10.x, strongly typed networks from 11), registers the
plugins, names the ONNX node of any parser error, and writes <engine>.json (TensorRT
version, GPU, precision, input size, class names, ONNX hash) that the runtime checks
before loading. Where tensorrt is not importable it stops and prints the equivalent
trtexec command.
"""

from __future__ import annotations

import argparse
import sys

from runtime.model_info import ModelFileError
from runtime.trt_build import PRECISIONS, BuildError, BuildOptions, TensorRTUnavailableError, build_engine


def batch_profile(text: str):
    """"N" or "MIN,OPT,MAX" -> (min, opt, max)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN,OPT,MAX, got {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected N or MIN,OPT,MAX, got {text!r}")
    return values * 3 if len(values) == 1 else values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.to_trt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="ONNX from python -m export.to_onnx (--target trt or onnx)")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS)
    parser.add_argument("--output", help="engine file to write (default: the ONNX name with .engine)")
    parser.add_argument("--workspace", type=int, default=4096, help="builder workspace in MB")
    parser.add_argument("--timing-cache", help="timing cache file, read if present and updated after the build")
    parser.add_argument("--dla-core", type=int, help="build for this Jetson DLA core (GPU fallback allowed)")
    parser.add_argument("--batch-profile", type=batch_profile,
                        help="MIN,OPT,MAX batch for an ONNX with a dynamic batch dimension (this project's exports "
                             "have the batch fixed with to_onnx --batch; given for one, it must match)")
    parser.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    args = parser.parse_args(argv)
    output = args.output or args.onnx.rsplit(".", 1)[0] + ".engine"
    try:
        options = BuildOptions(onnx=args.onnx, output=output, precision=args.precision, workspace_mb=args.workspace,
                               timing_cache=args.timing_cache, dla_core=args.dla_core, verbose=args.verbose,
                               batch_profile=args.batch_profile)
        metadata = build_engine(options)
    except (TensorRTUnavailableError, BuildError, ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {output} and {output}.json: TensorRT {metadata.tensorrt_version}, {metadata.precision}, "
          f"{metadata.gpu_name} (sm {metadata.compute_capability}), built in {metadata.build_seconds:.0f} s")
    print(f"next: python -m runtime.video --model {output} --source VIDEO_OR_CAMERA --output annotated.mp4   "
          f"(keep {output}.json beside it: another TensorRT version or GPU is refused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
