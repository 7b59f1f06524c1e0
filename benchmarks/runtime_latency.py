"""Runtime latency: post-processing, per-stage latency, and the video loop against bare inference.

    python -m benchmarks.runtime_latency                        # all three parts, the micro model
    python -m benchmarks.runtime_latency --model shapes.onnx --frames 200
    python -m benchmarks.runtime_latency --parts post --runs 50

1. post: unmolding 100 detections of one image, 1024x1024 and 1920x1080 (molded to
   1024), from synthesised network outputs: box sides log-uniform in 16..512 px of the
   molded image, smooth 28x28 masks. Four ways: Matterport's exact paste into a full
   bool [h,w,N] stack; the fast paste into the same stack; the fast paste of every mask
   into its own box at full resolution (what drawing and COCO RLE use: "crops"); lazy
   (boxes and 28x28 masks only, pasted when read). Plus the fast paste's mask IoU
   against the exact one, and post-processing's share of a frame.
2. stages: a 640x480 shapes clip through ``detect`` and drawing, frame by frame:
   p50/p90/p99 of molding, inference, post-processing and drawing.
3. video: the pipelined video loop (runtime.video) on the same clip and model, writing
   an .mp4, against bare inference (``infer`` on one molded frame in a loop), same
   process, same ONNX Runtime threads (default 1, so the other core is free for the
   other stages, as a GPU leaves the CPU free; see the README).

The default model is a small Mask R-CNN (ResNet50, 64x64 input, 10 detections, default
random weights) exported once to benchmarks/artifacts/runtime_micro.onnx; pass --model
for another. Reports: benchmarks/results/runtime_latency.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np

from benchmarks.common import markdown_table, publish, time_it
from runtime.detector import open_model
from runtime.draw import draw_detections
from runtime.masks import paste_exact, paste_fast
from runtime.molding import MoldingSpec, mold_images
from runtime.postprocess import unmold_detections
from runtime.video import VideoOptions, percentiles, run_video
from runtime.video_io import VideoSource, parse_source

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, "artifacts")
# NVIDIA's published Detectron2 Mask R-CNN R50-FPN fp16 frame on an RTX A5000 (TensorRT 8.6,
# 1344x1344; ../shared/docs/deployment-facts.md): an outside figure, to size post-processing against.
PEER_TRT_FRAME_MS = 13.0


# ---------------------------------------------------------------- 1. post-processing
def synthetic_outputs(count: int, image_shape: Tuple[int, int], molded: int = 1024, seed: int = 0):
    """Network outputs of one image: ``count`` boxes inside the image's window of the
    molded frame (normalised), smooth 28x28 masks, scores, class ids."""
    rng = np.random.default_rng(seed)
    spec = MoldingSpec(min(molded, 800), molded, 0, "square", (123.7, 116.8, 103.9))
    window = mold_images([np.zeros((*image_shape, 3), np.uint8)], spec).windows[0]
    wy1, wx1, wy2, wx2 = (int(v) for v in window)
    sides = np.exp(rng.uniform(np.log(16), np.log(512), (count, 2)))
    sides = np.minimum(sides, [wy2 - wy1 - 1, wx2 - wx1 - 1])
    y1 = wy1 + rng.uniform(0, 1, count) * (wy2 - wy1 - sides[:, 0])
    x1 = wx1 + rng.uniform(0, 1, count) * (wx2 - wx1 - sides[:, 1])
    boxes = np.stack([y1, x1, y1 + sides[:, 0], x1 + sides[:, 1]], 1)
    boxes = ((boxes - [0, 0, 1, 1]) / (molded - 1)).astype(np.float32)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(10, 18, (count, 2))
    radii, softness = rng.uniform(6, 13, count), rng.uniform(0.7, 2.0, count)
    distance = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    masks = (1 / (1 + np.exp(-(radii[:, None, None] - distance) / softness[:, None, None]))).astype(np.float32)
    scores = np.sort(rng.uniform(0.5, 1.0, count))[::-1].astype(np.float32)
    return {"boxes": boxes, "masks": masks, "scores": scores, "class_ids": rng.integers(1, 81, count),
            "window": tuple(int(v) for v in window), "molded": (molded, molded), "shape": image_shape}


def measure_post(runs: int, warmup: int) -> Dict[str, object]:
    rows = {}
    for shape in ((1024, 1024), (1080, 1920)):
        out = synthetic_outputs(100, shape)

        def unmold(mode, paste, out=out):
            return unmold_detections(100, out["boxes"], out["class_ids"], out["scores"], out["masks"],
                                     out["window"], out["molded"], out["shape"], mask_mode=mode, paste=paste)

        def crops(out=out):
            unmold("lazy", "fast").masks.crops()

        timings = {"exact, full stack": time_it("exact", lambda: unmold("full", "exact"), runs, warmup),
                   "fast, full stack": time_it("fast", lambda: unmold("full", "fast"), runs, warmup),
                   "fast, crops": time_it("crops", crops, runs, warmup),
                   "lazy": time_it("lazy", lambda: unmold("lazy", "fast"), runs, warmup)}
        lazy = unmold("lazy", "fast")
        ious, pixels, differing = [], 0, 0
        for i, (y1, x1, y2, x2) in enumerate(lazy.rois):
            fast = paste_fast(lazy.masks.probs[i], y2 - y1, x2 - x1)
            exact = paste_exact(lazy.masks.probs[i], y2 - y1, x2 - x1)
            union = (fast | exact).sum()
            ious.append(1.0 if union == 0 else (fast & exact).sum() / union)
            pixels += fast.size
            differing += int((fast != exact).sum())
        rows[f"{shape[0]}x{shape[1]}"] = {
            "timings_ms": {name: percentiles(1e3 * np.array(t.runs)) for name, t in timings.items()},
            "mask_pixels": pixels, "differing_pixels": differing, "min_mask_iou": float(min(ious)),
            "mean_mask_iou": float(np.mean(ious))}
    return rows


# ---------------------------------------------------------------- 2. and 3. the model on a clip
def micro_model(path: str) -> str:
    """Export the default small model once (needs torch; the runtime itself does not)."""
    if os.path.isfile(path):
        return path
    import torch

    from export.to_onnx import export_onnx
    from model.config import Config
    from model.maskrcnn import MaskRCNN

    config = Config(NAME="micro", BACKBONE="resnet50", NUM_CLASSES=4, IMAGES_PER_GPU=1, IMAGE_MIN_DIM=64,
                    IMAGE_MAX_DIM=64, RPN_ANCHOR_SCALES=(4, 8, 16, 32, 64), TOP_DOWN_PYRAMID_SIZE=64,
                    FPN_CLASSIF_FC_LAYERS_SIZE=64, PRE_NMS_LIMIT=500, POST_NMS_ROIS_INFERENCE=50,
                    DETECTION_MAX_INSTANCES=10, DETECTION_MIN_CONFIDENCE=0.0)
    torch.manual_seed(0)
    print(f"exporting the micro model to {path} ...", flush=True)
    export_onnx(MaskRCNN(config).eval(), path, "onnx", 1, ["BG", "square", "circle", "triangle"])
    return path


def write_clip(path: str, frames: int, height: int = 480, width: int = 640) -> str:
    import cv2

    from model.data.dataset import shapes_clip

    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for frame in shapes_clip(frames, height, width, seed=3):
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def read_frames(path: str) -> List[np.ndarray]:
    source = VideoSource(parse_source(path))
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    return frames


def measure_stages(detector, frames: List[np.ndarray], warmup: int) -> Dict[str, Dict[str, float]]:
    names = detector.info.class_names
    samples: Dict[str, List[float]] = {"mold": [], "infer": [], "post": [], "draw": [], "total": []}
    for index, frame in enumerate(frames):
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        result = detector.detect([frame], bgr=True, masks="lazy", timings=timings)[0]
        drawn = time.perf_counter()
        draw_detections(frame.copy(), result, names, bgr=True, in_place=True)
        timings["draw"] = time.perf_counter() - drawn
        timings["total"] = time.perf_counter() - start
        if index >= warmup:
            for stage, seconds in timings.items():
                samples[stage].append(seconds * 1e3)
    return {stage: percentiles(values) for stage, values in samples.items()}


def measure_video(detector, clip: str, runs: int, warmup: int, repeats: int) -> Dict[str, object]:
    """Bare inference then the video loop, ``repeats`` times in turn; the ratio of each pair."""
    frame = read_frames(clip)[0]
    molded = mold_images([frame[:, :, ::-1]], detector.info.molding)
    windows = molded.windows.astype(np.float32)
    pairs = []
    for _ in range(repeats):
        bare = time_it("bare", lambda: detector.infer(molded.images, windows), runs, warmup)
        with tempfile.TemporaryDirectory() as folder:
            summary = run_video(detector, VideoSource(parse_source(clip)),
                                VideoOptions(output=os.path.join(folder, "out.mp4"), report_every=0))
        pairs.append({"bare_fps": 1.0 / bare.median, "video_fps": summary.fps, "ratio": summary.fps * bare.median,
                      "bare_infer_ms": percentiles(1e3 * np.array(bare.runs)), "frames": summary.frames_written,
                      "dropped": summary.frames_dropped, "video_stage_ms": summary.stage_ms})
    middle = sorted(pairs, key=lambda p: p["ratio"])[len(pairs) // 2]
    return {**middle, "ratios": [p["ratio"] for p in pairs], "repeats": pairs}


# ---------------------------------------------------------------- report
def r101_frame_ms():
    """The R101 1024x1024 onnx target's ONNX Runtime latency from benchmarks.export_onnx, if recorded."""
    try:
        with open(os.path.join(HERE, "results", "export_onnx.json")) as f:
            return 1e3 * json.load(f)["sizes"]["1024"]["onnx"]["onnxruntime"]["median"]
    except (OSError, KeyError, ValueError):
        return None


def share_of_frame(post, infer_ms: float) -> str:
    """Post-processing's share of a frame: this run's model, the R101 1024 model, a TensorRT frame."""
    at_1080, at_1024 = post["1080x1920"]["timings_ms"], post["1024x1024"]["timings_ms"]
    lazy, crops, peer = at_1080["lazy"]["p50"], at_1080["fast, crops"]["p50"], PEER_TRT_FRAME_MS
    text = (f"\n\nShare of a frame, 100 detections on 1920x1080: lazy {lazy:.2f} ms, every mask pasted {crops:.2f} ms; "
            f"that is {100 * lazy / (infer_ms + lazy):.1f}% / {100 * crops / (infer_ms + crops):.1f}% of this model's "
            f"{infer_ms:.1f} ms CPU frame, and {100 * lazy / (peer + lazy):.1f}% / {100 * crops / (peer + crops):.1f}% "
            f"of a {peer:.0f} ms TensorRT frame (NVIDIA's published fp16 R50-FPN on an RTX A5000: an outside figure, "
            f"not measured here).")
    r101 = r101_frame_ms()
    if r101:
        full, lazy = at_1024["fast, full stack"]["p50"], at_1024["lazy"]["p50"]
        text += (f"\n\nAgainst the R101 1024x1024 model in ONNX Runtime on this CPU ({r101:.0f} ms per frame, "
                 f"benchmarks/results/export_onnx.json, another run): 100 detections at 1024x1024 cost "
                 f"{100 * full / (r101 + full):.2f}% of the frame with a full mask stack, "
                 f"{100 * lazy / r101:.3f}% lazy.")
    return text


def report(post, stages, video, model: str, backend: str, threads: int, frames: int) -> str:
    parts = []
    if post:
        rows = []
        for size, entry in post.items():
            for name, t in entry["timings_ms"].items():
                rows.append([size, name, f"{t['p50']:.2f}", f"{t['p90']:.2f}", f"{t['p99']:.2f}"])
        iou = "; ".join(f"{size}: {e['differing_pixels']} of {e['mask_pixels']} mask pixels differ, min IoU "
                        f"{e['min_mask_iou']:.4f}" for size, e in post.items())
        parts.append("## 1. Post-processing of 100 detections (ms)\n\n" + markdown_table(
            ["image", "unmolding", "p50", "p90", "p99"], rows) +
            f"\n\nFast paste against Matterport's exact one: {iou}.")
    if stages:
        rows = [[stage, f"{t['p50']:.2f}", f"{t['p90']:.2f}", f"{t['p99']:.2f}"] for stage, t in stages.items()]
        share = share_of_frame(post, stages["infer"]["p50"]) if post else ""
        parts.append(f"## 2. Per-stage latency, {frames} frames of 640x480 (ms)\n\n"
                     + markdown_table(["stage", "p50", "p90", "p99"], rows) + share)
    if video:
        ratios = ", ".join(f"{r:.3f}" for r in video["ratios"])
        parts.append(f"## 3. Video loop against bare inference\n\nThe median of {len(video['ratios'])} pairs: bare "
                     f"inference {video['bare_fps']:.2f} fps (p50 {video['bare_infer_ms']['p50']:.1f} ms); video loop "
                     f"(capture, molding, inference, post, drawing, writing .mp4) {video['video_fps']:.2f} fps over "
                     f"{video['frames']} frames: **ratio {video['ratio']:.3f}** (each pair: {ratios}).")
    head = f"Model {model} ({backend}), ONNX Runtime threads {threads or 'default'}."
    return head + "\n\n" + "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported model (default: the micro model, exported on first use)")
    parser.add_argument("--parts", nargs="+", default=["post", "stages", "video"], choices=["post", "stages", "video"])
    parser.add_argument("--frames", type=int, default=240, help="frames of the clip")
    parser.add_argument("--video-repeats", type=int, default=3, help="bare / video pairs measured in turn")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (0: its default)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "runtime_latency"))
    args = parser.parse_args(argv)
    post = measure_post(args.runs, args.warmup) if "post" in args.parts else None
    stages = video = None
    model = args.model or os.path.join(ARTIFACTS, "runtime_micro.onnx")
    backend = ""
    if {"stages", "video"} & set(args.parts):
        os.makedirs(ARTIFACTS, exist_ok=True)
        model = args.model or micro_model(model)
        detector = open_model(model, threads=args.threads)
        backend = detector.backend
        with tempfile.TemporaryDirectory() as folder:
            clip = write_clip(os.path.join(folder, "clip.mp4"), args.frames)
            if "stages" in args.parts:
                stages = measure_stages(detector, read_frames(clip), args.warmup)
            if "video" in args.parts:
                video = measure_video(detector, clip, args.runs, args.warmup, args.video_repeats)
    body = report(post, stages, video, os.path.relpath(model), backend, args.threads, args.frames)
    publish(args.output, "Runtime latency", body,
            {"post": post, "stages": stages, "video": video, "model": model, "backend": backend,
             "threads": args.threads, "frames": args.frames, "runs": args.runs},
            "python -m benchmarks.soak   (resident memory over 10,000 frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
