"""Timing and reporting shared by the benchmarks: warm-up, repeated runs, median and
spread, a description of the machine, and Markdown + JSON reports written atomically."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence

from runtime.files import write_text_atomic


@dataclass
class Timing:
    """Seconds per run: median, min, max, inter-quartile range, and every run."""

    name: str
    median: float
    min: float
    max: float
    iqr: float
    runs: List[float]


def time_it(name: str, fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> Timing:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return timing(name, samples)


def time_interleaved(fns: Dict[str, Callable[[], object]], runs: int = 5, warmup: int = 1) -> List[Timing]:
    """Like time_it for several functions, timed one call of each in turn (so that a change
    in the machine's speed touches all alike) after each one's warm-up."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return [timing(name, values) for name, values in samples.items()]


def timing(name: str, samples: List[float]) -> Timing:
    """The Timing of ``samples`` (seconds per run)."""
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(name, statistics.median(samples), min(samples), max(samples),
                  quartiles[2] - quartiles[0], samples)


def sizes_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The arguments of the full-size latency benchmarks: --sizes (input sides, default 1024
    and 512), --runs and --warmup (of time_it); each adds its own and --output."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    return parser


def machine() -> Dict[str, object]:
    """CPU model, core count and library versions."""
    cpu, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "logical_cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            # what bfloat16 speed depends on (AMX tiles, AVX512 bf16 instructions)
            "cpu_bf16": " ".join(f for f in flags if f in ("amx_bf16", "avx512_bf16")) or "none",
            # the vector and matrix units int8 / fp32 kernels use
            "cpu_simd": " ".join(sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in
                                        ("avx2", "fma", "avx_vnni"))) or "none"}
    for module, key in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("cv2", "opencv")):
        try:
            info[key] = __import__(module).__version__
        except ImportError:
            pass
    if "torch" in info:
        import torch
        info["torch_threads"] = torch.get_num_threads()
    return info


def has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX); without them
    bf16 autocast is emulated and several times slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(stem: str, title: str, body: str, data: Dict[str, object]) -> List[str]:
    """Write ``stem``.md and ``stem``.json; returns the two paths."""
    data = {"title": title, "machine": machine(), **data}
    env = "\n".join(f"- {k}: {v}" for k, v in data["machine"].items())
    md = f"# {title}\n\n{body}\n\n## Machine\n{env}\n"
    write_text_atomic(stem + ".md", md)
    write_text_atomic(stem + ".json", json.dumps(data, indent=1, default=_plain))
    return [stem + ".md", stem + ".json"]


def publish(stem: str, title: str, body: str, data: Dict[str, object], next_command: str) -> None:
    """Write the report (see write_report), print its body, where it went and what to run next."""
    paths = write_report(stem, title, body, data)
    print(body)
    print("wrote " + ", ".join(paths))
    print("next: " + next_command)


def _plain(value):
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)
