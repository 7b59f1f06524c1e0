"""The video loop: every frame of a file written with its overlays, stale live frames
dropped, Ctrl-C / SIGTERM leaving a playable file, and sources that fail."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from runtime import video
from runtime.detector import Detector, OnnxDetector
from runtime.video import VideoOptions, run_video
from runtime.video_io import SourceSpec, VideoSource, VideoSourceError, parse_source


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


class SlowDetector(Detector):
    """One fixed detection per image after ``delay`` seconds: the pipeline without a model."""

    def __init__(self, info, delay=0.0):
        self.info, self.delay, self.backend = info, delay, "stand-in"

    def infer(self, images, windows):
        time.sleep(self.delay)
        batch, k = len(images), 4
        boxes = np.zeros((batch, k, 4), np.float32)
        boxes[:, 0] = [0.25, 0.25, 0.75, 0.75]
        masks = np.zeros((batch, k, 28, 28), np.float32)
        masks[:, 0, 4:24, 4:24] = 1.0
        return {"num_detections": np.ones(batch, np.int64), "boxes": boxes,
                "scores": np.full((batch, k), 0.9, np.float32), "class_ids": np.ones((batch, k), np.int64),
                "masks": masks}


@pytest.fixture(scope="module")
def info(tiny_exports):
    return OnnxDetector(tiny_exports["onnx"]).info


class LiveCapture:
    """A camera: ``frames`` frames as fast as asked, then (``dies``) nothing more."""

    def __init__(self, frames, dies=True):
        self.left, self.dies = frames, dies

    def read(self):
        if self.left <= 0 and self.dies:
            return False, None
        self.left -= 1
        return True, np.full((96, 128, 3), 100, np.uint8)

    def get(self, prop):
        return 0

    def release(self):
        pass


def test_file_loses_no_frame_and_gets_overlays(tmp_path, tiny_exports, clip_writer):
    clip = clip_writer(tmp_path / "clip.mp4", 8)
    out = tmp_path / "out" / "annotated.mp4"
    rc = video.main(["--model", tiny_exports["onnx"], "--source", clip, "--output", str(out)])
    assert rc == 0
    written, original = read_video(out), read_video(clip)
    assert len(written) == len(original) == 8 and written[0].shape == original[0].shape
    changed = [np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40 for a, b in zip(written, original)]
    assert all(c.mean() > 0.01 for c in changed)  # masks, boxes and labels were drawn on every frame
    summary = json.loads((tmp_path / "out" / "annotated.mp4.json").read_text())
    assert summary["frames_read"] == summary["frames_written"] == 8 and summary["frames_dropped"] == 0
    assert summary["stopped_by"] == "end of stream" and summary["detections"] > 0
    assert set(summary["stage_ms"]) == {"capture", "mold", "infer", "post", "draw", "write", "latency"}
    assert not list((tmp_path / "out").glob("*.partial*"))


def test_live_source_drops_stale_frames_a_file_none(tmp_path, info, clip_writer):
    slow = SlowDetector(info, delay=0.03)
    live = VideoSource(SourceSpec("camera", 0), reconnects=0, opener=lambda spec: LiveCapture(40, dies=False))
    summary = run_video(slow, live, VideoOptions(max_frames=40, report_every=0))
    assert summary.frames_read == 40 and summary.frames_dropped > 0
    assert summary.frames_written + summary.frames_dropped == 40
    clip = clip_writer(tmp_path / "clip.avi", 12)
    summary = run_video(slow, VideoSource(parse_source(clip)), VideoOptions(report_every=0))
    assert summary.frames_read == summary.frames_written == 12 and summary.frames_dropped == 0


def test_live_source_that_dies_is_reopened_then_given_up(tmp_path, info):
    opened = []

    def opener(spec):
        opened.append(spec)
        if len(opened) > 2:
            raise VideoSourceError("cannot open camera 0: is the camera connected?")
        return LiveCapture(5)

    source = VideoSource(SourceSpec("camera", 0), reconnects=3, reconnect_delay=0.01, opener=opener, log=sys.stdout)
    out = tmp_path / "live.avi"
    with pytest.raises(VideoSourceError, match=r"camera 0 died after 10 frames and could not be reopened \(3 attempts"):
        run_video(SlowDetector(info), source, VideoOptions(output=str(out), report_every=0))
    assert len(read_video(out)) >= 1  # what came through before the failure is finalised, playable
    flaky = iter([LiveCapture(3), LiveCapture(4)])
    source = VideoSource(SourceSpec("url", "rtsp://cam"), reconnects=2, reconnect_delay=0.01,
                         opener=lambda spec: next(flaky), log=sys.stdout)
    summary = run_video(SlowDetector(info), source, VideoOptions(max_frames=7, report_every=0))
    assert summary.frames_read == summary.frames_written + summary.frames_dropped == 7
    assert "reopened 1 times" in summary.warnings[0]


def test_sources_that_do_not_open(tmp_path, tiny_exports, capsys):
    with pytest.raises(VideoSourceError, match="missing.mp4: video file not found"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(VideoSourceError, match="is a folder"):
        parse_source(str(tmp_path))
    assert parse_source("2") == SourceSpec("camera", 2) and parse_source("rtsp://x/y").kind == "url"
    assert parse_source("videotestsrc ! appsink").kind == "gstreamer"
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
    rc = video.main(["--model", tiny_exports["onnx"], "--source", str(tmp_path / "junk.mp4")])
    assert rc == 2 and "cannot open file" in capsys.readouterr().err
    if cv2.getBuildInformation().count("GStreamer:                   NO"):
        with pytest.raises(VideoSourceError, match="built WITHOUT GStreamer"):
            VideoSource(parse_source("videotestsrc ! appsink"))


def test_show_without_a_gui_says_so(tmp_path, tiny_exports, clip_writer, capsys):
    if video._can_show():
        pytest.skip("this OpenCV has a GUI backend and a display")
    rc = video.main(["--model", tiny_exports["onnx"], "--source", clip_writer(tmp_path / "c.avi", 2), "--show"])
    assert rc == 2 and "--show needs an OpenCV with a GUI" in capsys.readouterr().err


def test_truncated_file_is_reported(tmp_path, info, clip_writer):
    clip = clip_writer(tmp_path / "clip.avi", 30)
    data = open(clip, "rb").read()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    summary = run_video(SlowDetector(info), VideoSource(parse_source(str(tmp_path / "cut.avi"))),
                        VideoOptions(report_every=0))
    assert 0 < summary.frames_written < 30
    assert f"ended at frame {summary.frames_read} of the 30 its header announces" in summary.warnings[0]


@pytest.mark.parametrize("sig, code, why", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_mid_run_leaves_a_playable_file(tmp_path, tiny_exports, clip_writer, sig, code, why):
    clip = clip_writer(tmp_path / "clip.mp4", 200)
    out = tmp_path / "out.mp4"
    process = subprocess.Popen([sys.executable, "-m", "runtime.video", "--model", tiny_exports["onnx"],
                                "--source", clip, "--output", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=os.getcwd())
    deadline = time.time() + 120
    while not (tmp_path / "out.partial.mp4").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    frames = read_video(out)
    summary = json.loads((tmp_path / "out.mp4.json").read_text())
    assert 0 < len(frames) == summary["frames_written"] < 200 and why in summary["stopped_by"]
    assert not (tmp_path / "out.partial.mp4").exists()
