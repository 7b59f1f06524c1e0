"""The video loop: capture, molding, inference, drawing and writing in threads joined by bounded queues.

    python -m runtime.video --model shapes.onnx --source clip.mp4 --output annotated.mp4
    python -m runtime.video --model model.engine --source 0 --show                # a camera
    python -m runtime.video --model model.engine --source rtsp://cam.local/stream --output out.mp4
    python -m runtime.video --model model.engine --output out.mp4 --source \\
        "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! video/x-raw,format=BGRx ! \\
         videoconvert ! video/x-raw,format=BGR ! appsink drop=1"                # Jetson CSI camera

Stages run concurrently, so the slowest one sets the pace: while the model runs on frame
n, frame n+1 is read and molded and frame n-1 is drawn and written. A live source
(camera, URL, pipeline) keeps only the newest frame waiting, dropping stale ones; a file
loses none. Live FPS and per-stage latency are printed as it runs and summarised at the
end (also as JSON). The end of the stream, --max-frames, Ctrl-C and SIGTERM all finalise
the output file; a source that will not open, or dies and cannot be reopened, ends the
run with a message saying so.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from runtime.detector import Detector, open_model
from runtime.draw import draw_detections
from runtime.files import write_text_atomic
from runtime.masks import MASK_THRESHOLD
from runtime.model_info import ModelFileError
from runtime.video_io import VideoSource, VideoSourceError, VideoWriter, parse_source

STAGES = ("capture", "mold", "infer", "post", "draw", "write", "latency")
_END = object()  # passed down the queues after the last frame


@dataclass
class VideoOptions:
    output: Optional[str] = None
    show: bool = False
    max_frames: Optional[int] = None
    score_threshold: Optional[float] = None
    mask_threshold: float = MASK_THRESHOLD
    queue_size: int = 4
    fps: Optional[float] = None  # of the output; default: the source's, else 30
    report_every: float = 2.0  # seconds between progress lines (0: none)


@dataclass
class Frame:
    index: int
    image: np.ndarray  # BGR
    read_at: float
    timings: Dict[str, float] = field(default_factory=dict)
    molded: object = None
    detections: object = None


@dataclass
class VideoSummary:
    source: str
    output: Optional[str]
    backend: str
    frames_read: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    detections: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stopped_by: str = ""
    warnings: List[str] = field(default_factory=list)
    stage_ms: Dict[str, Dict[str, float]] = field(default_factory=dict)  # stage -> p50/p90/p99/mean/max (last 10k)

    def lines(self) -> List[str]:
        out = [f"{self.frames_written} frames in {self.seconds:.1f} s: {self.fps:.2f} fps ({self.stopped_by}); "
               f"{self.frames_read} read, {self.frames_dropped} dropped as stale, {self.detections} detections"]
        out += [f"  {stage:8s} p50 {s['p50']:8.2f} ms  p90 {s['p90']:8.2f}  p99 {s['p99']:8.2f}"
                for stage, s in self.stage_ms.items()]
        return out + [f"warning: {w}" for w in self.warnings]


class Recent:
    """The last ``capacity`` values of a measurement in a preallocated float32 ring: a
    run of any length keeps a fixed amount of memory."""

    def __init__(self, capacity: int = 10000):
        self.ring, self.count = np.zeros(capacity, np.float32), 0

    def add(self, value: float) -> None:
        self.ring[self.count % len(self.ring)] = value
        self.count += 1

    def values(self, last: Optional[int] = None) -> np.ndarray:
        kept = len(self)
        last = kept if last is None else min(last, kept)
        end = self.count % len(self.ring)
        indices = (np.arange(end - last, end)) % len(self.ring)
        return self.ring[indices]

    def __len__(self) -> int:
        return min(self.count, len(self.ring))


def percentiles(values_ms: Sequence[float]) -> Dict[str, float]:
    """p50, p90, p99 (linear interpolation), mean and max of durations in ms."""
    values = np.asarray(values_ms, np.float64)
    if not len(values):
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(values.mean()),
            "max": float(values.max())}


class _Pipeline:
    """The five threads of one run. ``stop`` ends the capture and lets the frames in flight
    finish; ``abort`` (a stage failed, or a second Ctrl-C) ends every stage at once."""

    def __init__(self, detector: Detector, source: VideoSource, options: VideoOptions, stop: threading.Event):
        self.detector, self.source, self.options, self.stop = detector, source, options, stop
        self.abort = threading.Event()
        size = max(1, options.queue_size)
        waiting = 1 if source.spec.live else size  # a live frame must not wait behind others
        self.to_mold, self.to_infer = queue.Queue(maxsize=waiting), queue.Queue(maxsize=waiting)
        self.to_draw, self.to_write = queue.Queue(maxsize=size), queue.Queue(maxsize=size)
        self.writer: Optional[VideoWriter] = None
        self.errors: List[BaseException] = []
        self.source_error: Optional[VideoSourceError] = None
        self.read = self.written = self.dropped = self.detections = 0
        self.interrupted = False
        self.stages_done = 0
        self.timings: Dict[str, Recent] = {stage: Recent() for stage in STAGES}  # ms, the last 10,000 frames
        self.lock = threading.Lock()
        self.first_written: Optional[float] = None
        self.last_written: Optional[float] = None

    # ------------------------------------------------------------- stages
    def capture(self) -> None:
        limit = self.options.max_frames
        while not (self.stop.is_set() or self.abort.is_set()) and (limit is None or self.read < limit):
            start = time.perf_counter()
            try:
                image = self.source.read()
            except VideoSourceError as exc:  # the frames already read still go through, then it is raised
                self.source_error = exc
                break
            if image is None:
                break
            now = time.perf_counter()
            frame = Frame(self.read, image, now, {"capture": now - start})
            self.read += 1
            if self.source.spec.live:
                self._put_newest(frame)
            else:
                self._put(self.to_mold, frame)

    def _put_newest(self, frame: Frame) -> None:
        """Live sources: replace a frame still waiting to be molded (it is stale now)."""
        while True:
            try:
                self.to_mold.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self.to_mold.get_nowait()
                    with self.lock:
                        self.dropped += 1
                except queue.Empty:
                    pass

    def _put(self, target: queue.Queue, item) -> None:
        """Blocking put that gives up when the run is aborted."""
        while not self.abort.is_set():
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def _get(self, source: queue.Queue):
        """Blocking get; the end marker when the run is aborted."""
        while not self.abort.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                pass
        return _END

    def mold(self, frame: Frame) -> Frame:
        frame.molded = self.detector.mold([frame.image], bgr=True, timings=frame.timings)
        return frame

    def infer(self, frame: Frame) -> Frame:
        options = self.options
        frame.detections = self.detector.detect_molded(frame.molded, options.score_threshold, options.mask_threshold,
                                                       masks="lazy", timings=frame.timings)[0]
        frame.molded = None
        return frame

    def draw(self, frame: Frame) -> Frame:
        start = time.perf_counter()
        draw_detections(frame.image, frame.detections, self.detector.info.class_names, bgr=True, in_place=True)
        frame.timings["draw"] = time.perf_counter() - start
        return frame

    def write(self, frame: Frame) -> None:
        start = time.perf_counter()
        if self.options.output:
            if self.writer is None:
                height, width = frame.image.shape[:2]
                self.writer = VideoWriter(self.options.output, self.options.fps or self.source.fps or 30.0,
                                          (width, height))
            self.writer.write(frame.image)
        if self.options.show:
            import cv2

            cv2.imshow("mrcnn-edge", frame.image)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                self.stop.set()
        now = time.perf_counter()
        frame.timings["write"] = now - start
        frame.timings["latency"] = now - frame.read_at
        with self.lock:
            self.written += 1
            self.detections += len(frame.detections)
            self.first_written = self.first_written or now
            self.last_written = now
            for stage, seconds in frame.timings.items():
                self.timings[stage].add(seconds * 1e3)

    # ------------------------------------------------------------- threads
    def run_stage(self, work, inbox: Optional[queue.Queue], outbox: Optional[queue.Queue]) -> None:
        if hasattr(signal, "pthread_sigmask"):  # signals go to the main thread, never into a codec's system call
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if inbox is None:
                work()
            else:
                while True:
                    item = self._get(inbox)
                    if item is _END:
                        break
                    result = work(item)
                    if outbox is not None:
                        self._put(outbox, result)
        except BaseException as exc:  # noqa: B036 (handed to the main thread, re-raised there)
            self.errors.append(exc)
            self.abort.set()
        finally:
            if outbox is not None:
                self._put(outbox, _END)
            with self.lock:
                self.stages_done += 1

    def start(self) -> None:
        self.threads = [
            threading.Thread(target=self.run_stage, args=(self.capture, None, self.to_mold), name="capture"),
            threading.Thread(target=self.run_stage, args=(self.mold, self.to_mold, self.to_infer), name="mold"),
            threading.Thread(target=self.run_stage, args=(self.infer, self.to_infer, self.to_draw), name="infer"),
            threading.Thread(target=self.run_stage, args=(self.draw, self.to_draw, self.to_write), name="draw"),
            threading.Thread(target=self.run_stage, args=(self.write, self.to_write, None), name="write"),
        ]
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    def alive(self) -> bool:
        """Is a stage still running? (Counted by the stages themselves: a Thread.join or
        is_alive interrupted by Ctrl-C can wrongly report a running thread as ended.)"""
        with self.lock:
            return self.stages_done < len(self.threads)

    def interrupt(self, log) -> None:
        """Ctrl-C: the first one stops the capture and lets the frames in flight finish;
        a second one does not wait for them."""
        if self.interrupted:
            self.abort.set()
        self.interrupted = True
        self.stop.set()
        print("\nstopping: finishing the frames in flight and closing the output (Ctrl-C again to skip)",
              file=log, flush=True)

    def finish(self, log=sys.stderr) -> None:
        """Join every stage and finalise the output, whatever Ctrl-C does meanwhile."""
        while True:
            try:
                while self.alive():
                    time.sleep(0.02)
                if self.writer is not None:  # no stage can touch it any more
                    self.writer.close()
                return
            except KeyboardInterrupt:
                self.interrupt(log)


def run_video(detector: Detector, source: VideoSource, options: VideoOptions,
              stop: Optional[threading.Event] = None, log=sys.stderr) -> VideoSummary:
    """Run the pipeline until the source ends, ``max_frames``, ``stop`` is set or Ctrl-C.

    The output file is finalised in every case. Raises VideoSourceError (and any stage's
    exception) after finalising; otherwise returns the summary."""
    stop = stop or threading.Event()
    pipeline = _Pipeline(detector, source, options, stop)
    shown, last_count = time.perf_counter(), 0
    pipeline.start()
    while pipeline.alive():
        try:  # Ctrl-C can land anywhere in here: every place leads to the same orderly stop
            time.sleep(0.1)
            now = time.perf_counter()
            if options.report_every and now - shown >= options.report_every:
                count = pipeline.written
                print(_progress_line(pipeline, (count - last_count) / (now - shown)), file=log, flush=True)
                shown, last_count = now, count
        except KeyboardInterrupt:
            pipeline.interrupt(log)
    pipeline.finish()
    if pipeline.errors or pipeline.source_error:
        raise (pipeline.errors or [pipeline.source_error])[0]
    if pipeline.interrupted:
        stopped_by = "interrupted"
    elif stop.is_set():
        stopped_by = "stopped"
    elif options.max_frames is not None and pipeline.read >= options.max_frames:
        stopped_by = "max frames"
    else:
        stopped_by = "end of stream"
    return _summary(pipeline, detector, source, options, stopped_by)


def _progress_line(pipeline: _Pipeline, fps: float) -> str:
    recent = {stage: values.values(30).mean() for stage, values in pipeline.timings.items() if len(values)}
    stages = " | ".join(f"{stage} {recent[stage]:.1f} ms" for stage in ("infer", "post", "draw") if stage in recent)
    return f"frames {pipeline.written} | {fps:.1f} fps | {stages} | dropped {pipeline.dropped}"


def _summary(pipeline: _Pipeline, detector: Detector, source: VideoSource, options: VideoOptions,
             stopped_by: str) -> VideoSummary:
    # steady-state rate: from the first frame out to the last (the pipeline's fill time left out)
    seconds = pipeline.last_written - pipeline.first_written if pipeline.written > 1 else 0.0
    summary = VideoSummary(source=str(source.spec), output=options.output, backend=detector.backend,
                           frames_read=pipeline.read, frames_written=pipeline.written,
                           frames_dropped=pipeline.dropped, detections=pipeline.detections, seconds=seconds,
                           fps=(pipeline.written - 1) / seconds if seconds > 0 else 0.0,
                           stopped_by=stopped_by,
                           stage_ms={stage: percentiles(v.values()) for stage, v in pipeline.timings.items()
                                     if len(v)})
    if source.ended_early:
        summary.warnings.append(source.ended_early)
    if source.reconnected:
        summary.warnings.append(f"the source was reopened {source.reconnected} times")
    return summary


def _can_show() -> bool:
    from runtime.cv import import_cv2

    cv2 = import_cv2("--show")
    try:
        cv2.namedWindow("mrcnn-edge")
        return True
    except cv2.error:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported model: .onnx, or .engine/.plan with its .json")
    parser.add_argument("--source", required=True, help="video file, camera index, URL or GStreamer pipeline")
    parser.add_argument("--output", help="annotated video to write (.mp4, .avi, .mkv) or a GStreamer sink pipeline")
    parser.add_argument("--show", action="store_true", help="show the annotated frames in a window (q or Esc stops)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--score-threshold", type=float, help="keep detections scoring at least this")
    parser.add_argument("--mask-threshold", type=float, default=MASK_THRESHOLD)
    parser.add_argument("--fps", type=float, help="frame rate of the output (default: the source's)")
    parser.add_argument("--reconnects", type=int, default=5, help="times to reopen a live source that stops")
    parser.add_argument("--json", help="write the summary here (default: OUTPUT.json when --output is a file)")
    parser.add_argument("--providers", default="auto", help="ONNX Runtime: auto, cpu, cuda or tensorrt")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    args = parser.parse_args(argv)
    if not args.output and not args.show:
        print("note: neither --output nor --show: frames are processed and counted only", file=sys.stderr)
    if args.show and not _can_show():
        print("error: --show needs an OpenCV with a GUI backend and a display (opencv-python-headless has none); "
              "use --output instead", file=sys.stderr)
        return 2
    stop, terminated = threading.Event(), threading.Event()

    def on_sigterm(*_):
        terminated.set()
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        spec = parse_source(args.source)
        detector = open_model(args.model, providers=args.providers, threads=args.threads)
        print(f"{args.model}: {detector.backend}; source {spec}", file=sys.stderr)
        source = VideoSource(spec, reconnects=args.reconnects)
        try:
            options = VideoOptions(output=args.output, show=args.show, max_frames=args.max_frames,
                                   score_threshold=args.score_threshold, mask_threshold=args.mask_threshold,
                                   fps=args.fps)
            summary = run_video(detector, source, options, stop)
        finally:
            source.close()
    except (VideoSourceError, ModelFileError, ValueError, ImportError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the loop started: nothing was written
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated.is_set():
        summary.stopped_by = "terminated (SIGTERM)"
    print("\n".join(summary.lines()))
    report = args.json or (args.output + ".json" if args.output and "!" not in args.output else None)
    if report:
        write_text_atomic(report, json.dumps(asdict(summary), indent=1))
        print(f"wrote {report}")
    if args.output:
        print(f"wrote {args.output}")
    if summary.stopped_by == "interrupted" or terminated.is_set():
        return 130 if summary.stopped_by == "interrupted" else 143
    if source.ended_early:
        return 1
    print(f"next: python -m benchmarks.runtime_latency --model {args.model}   (per-stage latency, video vs bare FPS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
