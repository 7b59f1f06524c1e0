"""Soak: 10,000 frames through the video loop, resident memory sampled as it runs.

    python -m benchmarks.soak                       # 10,000 frames, the micro model
    python -m benchmarks.soak --frames 2000 --model shapes.onnx

A shapes clip (320x240) is written once and played by a looping source with file
semantics (no frame dropped), through the whole pipeline: molding, ONNX Runtime,
lazy unmolding, drawing and writing an .mp4. Resident memory (VmRSS) is read every
``--sample-every`` frames; growth is measured from the first sample after warm-up
(``--warmup-frames``: allocators and ONNX Runtime's arenas settle first) to the last.
Reports: benchmarks/results/soak.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import List, Tuple

import numpy as np

from benchmarks.common import markdown_table, publish
from benchmarks.runtime_latency import ARTIFACTS, micro_model, read_frames, write_clip
from runtime.detector import open_model
from runtime.video import VideoOptions, run_video
from runtime.video_io import SourceSpec, VideoSource

HERE = os.path.dirname(os.path.abspath(__file__))


def resident_mb() -> float:
    """This process's resident set size (VmRSS) in MB, from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


class LoopingClip:
    """A capture that replays a list of frames ``total`` times over (copies: the pipeline
    draws into its frames)."""

    def __init__(self, frames: List[np.ndarray], total: int):
        self.frames, self.total, self.done = frames, total, 0

    def read(self):
        if self.done >= self.total:
            return False, None
        frame = self.frames[self.done % len(self.frames)].copy()
        self.done += 1
        return True, frame

    def get(self, prop):
        return 30.0 if prop == 5 else 0  # cv2.CAP_PROP_FPS

    def release(self):
        pass


def sample_memory(pipeline_frames, stop: threading.Event, every: int, samples: List[Tuple[int, float]]) -> None:
    next_at = 0
    while not stop.is_set():
        done = pipeline_frames()
        if done >= next_at:
            samples.append((done, resident_mb()))
            next_at = done + every
        time.sleep(0.05)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported model (default: the micro model of benchmarks.runtime_latency)")
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--warmup-frames", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "soak"))
    args = parser.parse_args(argv)
    os.makedirs(ARTIFACTS, exist_ok=True)
    model = args.model or micro_model(os.path.join(ARTIFACTS, "runtime_micro.onnx"))
    detector = open_model(model, threads=args.threads)
    with tempfile.TemporaryDirectory() as folder:
        frames = read_frames(write_clip(os.path.join(folder, "clip.mp4"), 90, 240, 320))
        clip = LoopingClip(frames, args.frames)
        source = VideoSource(SourceSpec("file", "looping shapes clip"), opener=lambda spec: clip)
        samples: List[Tuple[int, float]] = [(0, resident_mb())]
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(lambda: clip.done, stop, args.sample_every, samples),
                                   daemon=True)
        sampler.start()
        started = time.perf_counter()
        summary = run_video(detector, source, VideoOptions(output=os.path.join(folder, "soak.mp4"), report_every=30))
        stop.set()
        sampler.join()
        samples.append((summary.frames_written, resident_mb()))
        output_mb = os.path.getsize(os.path.join(folder, "soak.mp4")) / 1e6
    elapsed = time.perf_counter() - started
    settled = [(n, mb) for n, mb in samples if n >= args.warmup_frames]
    base, end, peak = settled[0][1], settled[-1][1], max(mb for _, mb in settled)
    growth = 100 * (end - base) / base
    slope = np.polyfit([n for n, _ in settled], [mb for _, mb in settled], 1)[0] * 1000 if len(settled) > 2 else 0.0
    shown = samples[:: max(1, len(samples) // 12)] + [samples[-1]]
    body = (f"{summary.frames_written} frames ({summary.frames_dropped} dropped) through the video loop in "
            f"{elapsed / 60:.1f} min ({summary.fps:.1f} fps), model {os.path.relpath(model)} ({detector.backend}, "
            f"{args.threads} thread), {summary.detections} detections drawn, {output_mb:.1f} MB of video written.\n\n"
            f"Resident memory from frame {settled[0][0]} (after warm-up) to the end: {base:.1f} -> {end:.1f} MB, "
            f"**growth {growth:+.2f}%** (peak {peak:.1f} MB; fitted slope {slope:+.3f} MB per 1000 frames).\n\n"
            + markdown_table(["frames done", "resident MB"], [[n, f"{mb:.1f}"] for n, mb in shown]))
    publish(args.output, "Soak: resident memory over a long video run", body,
            {"frames": summary.frames_written, "dropped": summary.frames_dropped, "seconds": elapsed,
             "fps": summary.fps, "samples": samples, "growth_percent": growth, "base_mb": base, "end_mb": end,
             "peak_mb": peak, "slope_mb_per_1000_frames": slope, "model": model, "backend": detector.backend,
             "warmup_frames": args.warmup_frames, "stage_ms": summary.stage_ms},
            "python -m benchmarks.runtime_latency   (post-processing and per-stage latency)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
