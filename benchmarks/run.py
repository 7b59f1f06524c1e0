"""The benchmark report: every format of one model in one table, with gates.

    python -m benchmarks.run --weights benchmarks/artifacts/shapes_r50.pt
    python -m benchmarks.run --weights shapes.pt --formats torch,onnx,onnx-fp16,onnx-int8 --eval-images 100 \\
        --max-ap-drop onnx=0.5,onnx-int8=2 --min-ap 60
    python -m benchmarks.run --weights coco.pt --dataset coco --data /data/coco --image-size 1024

Formats: ``torch`` (MaskRCNN.detect), ``onnx`` (the export in ONNX Runtime), ``onnx-fp16``
(calibration.fp16), ``onnx-int8`` (calibration.int8's CPU form, u8 activations),
``onnx-int8-qdq`` (its TensorRT form, symmetric s8, run in ONNX Runtime), ``trt-fp16`` and
``trt-int8`` (TensorRT engines: "not available" where TensorRT is not installed). Each is
built from --weights in a work folder (or reused from --artifacts), run over the same
held-out images (molded, detected and unmolded through the same code), and scored with
COCO box and mask AP (pycocotools). Latency is per image, split into molding ("pre"),
the model ("infer") and unmolding ("post"), p50 and p90 over the evaluated images.

Gates (exit status 1 and the failing lines printed): ``--max-ap-drop`` in AP points
against the reference (torch, else onnx), for box and mask AP, one number for every
format or ``format=points,...``; ``--min-ap`` the lowest mask AP50 in points any
format may have. Reports: Markdown and JSON (--output).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from benchmarks.common import markdown_table, publish

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = ("torch", "onnx", "onnx-fp16", "onnx-int8", "onnx-int8-qdq", "trt-fp16", "trt-int8")
DEFAULT_FORMATS = "torch,onnx,onnx-fp16,onnx-int8,trt-fp16,trt-int8"


@dataclass
class FormatResult:
    name: str
    status: str = "ok"
    path: Optional[str] = None
    size_mb: Optional[float] = None
    box: Dict[str, float] = field(default_factory=dict)
    mask: Dict[str, float] = field(default_factory=dict)
    latency_ms: Dict[str, Dict[str, float]] = field(default_factory=dict)  # pre/infer/post/total -> p50, p90, ...
    seconds: float = 0.0

    @property
    def fps(self) -> Optional[float]:
        total = self.latency_ms.get("total", {}).get("p50")
        return 1e3 / total if total else None


class Timed:
    """A detector whose detect() records each call's per-stage seconds."""

    def __init__(self, detector):
        self.detector, self.samples = detector, []

    def detect(self, images):
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        result = self.detector.detect(images, timings=timings)
        timings["total"] = time.perf_counter() - start
        self.samples.append(timings)
        return result

    def latency_ms(self) -> Dict[str, Dict[str, float]]:
        from runtime.video import percentiles

        out = {}
        for stage, key in (("pre", "mold"), ("infer", "infer"), ("post", "post"), ("total", "total")):
            values = [1e3 * s[key] for s in self.samples if key in s]
            if values:
                out[stage] = percentiles(values)
        return out


def tensorrt_available() -> Optional[str]:
    try:
        import tensorrt

        return tensorrt.__version__
    except (ImportError, OSError):
        return None


class Builder:
    """Makes each format's model file once, in ``folder``, from the checkpoint."""

    def __init__(self, model, class_names, folder: str, calibration_data: str, calibration_images: int,
                 reuse: bool = False):
        self.model, self.class_names, self.folder = model, class_names, folder
        self.calibration_data, self.calibration_images, self.reuse = calibration_data, calibration_images, reuse
        self.files: Dict[str, str] = {}

    def existing(self, key: str, name: str) -> bool:
        """With --reuse, take a file an earlier step made from the same weights."""
        path = os.path.join(self.folder, name)
        if self.reuse and os.path.isfile(path):
            self.files[key] = path
        return key in self.files

    def onnx(self, target: str = "onnx") -> str:
        key = f"onnx-{target}"
        if not self.existing(key, f"model_{target}.onnx"):
            from export.to_onnx import export_model

            path = os.path.join(self.folder, f"model_{target}.onnx")
            export_model(self.model, path, target, self.class_names)
            self.files[key] = path
        return self.files[key]

    def fp16(self) -> str:
        if not self.existing("fp16", "model_onnx.fp16.onnx"):
            from calibration.fp16 import convert

            self.files["fp16"] = convert(self.onnx()).path
        return self.files["fp16"]

    def int8(self, form: str) -> str:
        name = {"cpu": "model_onnx.int8-cpu.onnx", "tensorrt": "model_onnx.int8.onnx"}[form]
        if not self.existing(f"int8-{form}", name):
            from calibration.int8 import run

            report = run([self.onnx()], self.calibration_data, self.calibration_images, "entropy", None, False, [])[0]
            for model in report.models:
                self.files[f"int8-{model.form}"] = model.path
        return self.files[f"int8-{form}"]

    def engine(self, precision: str) -> str:
        from runtime.trt_build import BuildOptions, build_engine

        source = self.int8("tensorrt") if precision == "int8" else self.onnx("trt")
        path = os.path.join(self.folder, f"model_{precision}.engine")
        build_engine(BuildOptions(source, path, precision))
        return path

    def detector(self, name: str):
        """(detector, file path or None) for a format."""
        from runtime import open_model

        if name == "torch":
            return self.model, None
        path = {"onnx": self.onnx, "onnx-fp16": self.fp16, "onnx-int8": lambda: self.int8("cpu"),
                "onnx-int8-qdq": lambda: self.int8("tensorrt"),
                "trt-fp16": lambda: self.engine("fp16"), "trt-int8": lambda: self.engine("int8")}[name]()
        return open_model(path, providers="cpu" if name.startswith("onnx") else None), path


def measure(name: str, builder: Builder, dataset, eval_images: int) -> FormatResult:
    from model.evaluate import evaluate

    result = FormatResult(name)
    if name.startswith("trt") and tensorrt_available() is None:
        result.status = "not available (no TensorRT here)"
        return result
    start = time.perf_counter()
    try:
        detector, path = builder.detector(name)
    except Exception as exc:  # one format failing must not hide the others
        result.status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        return result
    timed = Timed(detector)
    scores = evaluate(timed, dataset, limit=eval_images, progress=False)
    result.path = path
    result.size_mb = os.path.getsize(path) / 1e6 if path else None
    result.box, result.mask = scores.box, scores.mask
    result.latency_ms = timed.latency_ms()
    result.seconds = time.perf_counter() - start
    return result


def parse_drops(text: Optional[str]) -> Dict[str, float]:
    """"0.5" (every format) or "onnx=0.5,onnx-int8=2" -> {format: points}; "*" stands for every format."""
    if not text:
        return {}
    if "=" not in text:
        return {"*": float(text)}
    drops = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name not in FORMATS:
            raise ValueError(f"--max-ap-drop: unknown format {name!r} (one of {', '.join(FORMATS)})")
        drops[name] = float(value)
    return drops


def gate_failures(results: List[FormatResult], drops: Dict[str, float], min_ap: Optional[float]) -> List[str]:
    """Lines saying which format falls short of which gate (AP in points)."""
    done = [r for r in results if r.status == "ok"]
    reference = next((r for r in done if r.name == "torch"), None) or next((r for r in done if r.name == "onnx"), None)
    failures = []
    for result in done:
        limit = drops.get(result.name, drops.get("*"))
        if reference is not None and result is not reference and limit is not None:
            for kind in ("box", "mask"):
                drop = 100 * (getattr(reference, kind)["AP"] - getattr(result, kind)["AP"])
                if drop > limit:
                    failures.append(f"{result.name}: {kind} AP {100 * getattr(result, kind)['AP']:.1f} is "
                                    f"{drop:.2f} points below {reference.name}'s (allowed {limit:g})")
        if min_ap is not None and 100 * result.mask["AP50"] < min_ap:
            failures.append(f"{result.name}: mask AP50 {100 * result.mask['AP50']:.1f} < {min_ap:g}")
    failures += [f"{r.name}: {r.status}" for r in results if r.status.startswith("failed")]
    return failures


def table(results: List[FormatResult]) -> str:
    def pct(stats, key):
        return f"{100 * stats[key]:.1f}" if stats else "-"

    def lat(result, stage):
        t = result.latency_ms.get(stage)
        return f"{t['p50']:.1f} / {t['p90']:.1f}" if t else "-"

    rows = [[r.name, r.status, f"{r.size_mb:.1f}" if r.size_mb else "-", pct(r.box, "AP"), pct(r.mask, "AP"),
             pct(r.mask, "AP50"), pct(r.mask, "AP75"), lat(r, "pre"), lat(r, "infer"), lat(r, "post"),
             f"{r.fps:.1f}" if r.fps else "-"] for r in results]
    return markdown_table(["format", "status", "MB", "box AP", "mask AP", "mask AP50", "mask AP75",
                           "pre ms p50/p90", "infer ms p50/p90", "post ms p50/p90", "FPS"], rows)


def main(argv=None) -> int:
    from model.data.datasets_cli import add_dataset_arguments, open_dataset

    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint .pt (model.train) or Keras .h5")
    parser.add_argument("--config", help="module:ConfigClass or JSON (for .h5 weights)")
    add_dataset_arguments(parser)
    parser.add_argument("--formats", default=DEFAULT_FORMATS, help=f"comma-separated, of {', '.join(FORMATS)}")
    parser.add_argument("--image-size", type=int, help="input side (default: the checkpoint's IMAGE_MAX_DIM)")
    parser.add_argument("--eval-images", type=int, default=100, help="held-out images scored per format")
    parser.add_argument("--calibration-data", default="shapes", help="calibration.int8 --data")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--artifacts", help="keep the format files here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="take format files already in --artifacts, made by an earlier benchmarks.run from the "
                             "same --weights (an export.to_onnx file keeps the model's DETECTION_MIN_CONFIDENCE "
                             "in its graph and scores lower AP)")
    parser.add_argument("--max-ap-drop", help="AP points a format may lose against torch: N, or format=N,...")
    parser.add_argument("--min-ap", type=float, help="lowest mask AP50 (points) any format may have")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "run"))
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
    try:
        drops = parse_drops(args.max_ap_drop)
    except ValueError as exc:
        parser.error(str(exc))
    from model.config import ConfigError
    from model.detect import load_any
    from model.weights.h5_weights import WeightsError

    try:
        model, class_names = load_any(args.weights, args.config)
        config = dataclasses.replace(model.config, DETECTION_MIN_CONFIDENCE=0.0)  # score the whole PR curve
        if args.image_size:
            config = dataclasses.replace(config, IMAGE_MAX_DIM=args.image_size,
                                         IMAGE_MIN_DIM=min(config.IMAGE_MIN_DIM, args.image_size))
        model.config = config
        dataset = open_dataset(args, subset="val", model_config=config)
    except (WeightsError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = args.artifacts or tempfile.mkdtemp(prefix="benchmark.")
    os.makedirs(folder, exist_ok=True)
    builder = Builder(model.eval(), class_names, folder, args.calibration_data, args.calibration_images, args.reuse)
    results = []
    for name in formats:
        print(f"{name} ...", flush=True)
        results.append(measure(name, builder, dataset, args.eval_images))
        print(f"  {results[-1].status}" + (f": mask AP {100 * results[-1].mask['AP']:.1f}" if results[-1].mask
                                            else ""), flush=True)
    failures = gate_failures(results, drops, args.min_ap)
    evaluated = min(args.eval_images, dataset.num_images)
    side = config.IMAGE_MAX_DIM
    body = (f"{config.BACKBONE} {side}x{side} from {args.weights}; {evaluated} held-out "
            f"images of --dataset {args.dataset}; batch 1; AP in points (COCO, pycocotools); latency per image "
            f"(ms, p50 / p90); TensorRT: {tensorrt_available() or 'not installed'}.\n\n" + table(results)
            + "\n\nGates: " + ("; ".join(failures) if failures else
                                 f"passed (max AP drop {args.max_ap_drop or 'none'}, min mask AP50 "
                                 f"{'none' if args.min_ap is None else args.min_ap})"))
    fastest = builder.files.get("int8-cpu", builder.files.get("onnx-onnx", "MODEL.onnx"))
    publish(args.output, "Benchmark: every format of one model", body,
            {"formats": [dataclasses.asdict(r) for r in results], "gates": {"max_ap_drop": drops, "min_ap": args.min_ap,
                                                                            "failures": failures},
             "weights": args.weights, "eval_images": evaluated, "artifacts": folder},
            f"python -m runtime.video --model {fastest} --source VIDEO --output annotated.mp4")
    if failures:
        print("GATES FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
