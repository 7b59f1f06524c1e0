"""Video sources and writers over OpenCV, with the failures said plainly.

Frames are BGR uint8 [h,w,3], as OpenCV gives them.

A source is a file path, a camera index ("0"), a URL (rtsp://, http://, udp://) or a
GStreamer pipeline (any text with "!"; on a Jetson e.g. ``nvarguscamerasrc ! ... !
appsink``), which goes to OpenCV's GStreamer backend. Cameras, URLs and pipelines are
live: when one stops delivering, it is reopened up to ``reconnects`` times. A file is
read to its end; ending before the frame count its header gives is reported.

The writer writes to ``<name>.partial<ext>`` and renames it on ``close()``, so the
output path holds either nothing or a finalised, playable file.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from runtime.cv import import_cv2

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class VideoSourceError(RuntimeError):
    """A source that cannot be opened, or that died and could not be reopened."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "file", "camera", "url" or "gstreamer"
    target: object  # path / URL / pipeline (str) or camera index (int)

    @property
    def live(self) -> bool:
        return self.kind != "file"

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


def parse_source(text: str) -> SourceSpec:
    text = str(text).strip()
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if "!" in text:
        return SourceSpec("gstreamer", text)
    if "://" in text and not text.startswith("file://"):
        return SourceSpec("url", text)
    path = text[len("file://"):] if text.startswith("file://") else text
    if os.path.isdir(path):
        raise VideoSourceError(f"{path} is a folder, not a video (for images use python -m runtime.detect)")
    if not os.path.isfile(path):
        raise VideoSourceError(f"{path}: video file not found (a camera is a number, e.g. --source 0)")
    return SourceSpec("file", path)


def open_capture(spec: SourceSpec):
    """cv2.VideoCapture for ``spec``, or VideoSourceError saying why it did not open."""
    cv2 = import_cv2("reading video")
    backend = {"gstreamer": cv2.CAP_GSTREAMER, "url": cv2.CAP_FFMPEG}.get(spec.kind, cv2.CAP_ANY)
    capture = cv2.VideoCapture(spec.target, backend)
    if capture.isOpened():
        return capture
    capture.release()
    hint = {"file": "is it a video OpenCV's FFmpeg can decode?",
            "camera": "is the camera connected, and not in use by another program?",
            "url": "is the stream up and the address right?",
            "gstreamer": "this OpenCV " + ("has GStreamer" if _has_gstreamer(cv2) else
                                           "was built WITHOUT GStreamer (use JetPack's OpenCV)")}[spec.kind]
    raise VideoSourceError(f"cannot open {spec}: {hint}")


def _has_gstreamer(cv2) -> bool:
    info = cv2.getBuildInformation()
    return any(line.strip().startswith("GStreamer:") and "YES" in line for line in info.splitlines())


class VideoSource:
    """Frames from a source, reopening a live one that stops (see the module docstring).

    opener: SourceSpec -> an object with read(), get(prop), release() (cv2.VideoCapture;
    tests pass others). log: where reconnect messages go.
    """

    def __init__(self, spec: SourceSpec, reconnects: int = 5, reconnect_delay: float = 1.0,
                 opener: Callable = open_capture, log=sys.stderr):
        self.spec, self.reconnects, self.delay, self.opener, self.log = spec, reconnects, reconnect_delay, opener, log
        self.capture = opener(spec)
        self.frames = 0
        self.reconnected = 0
        cv2 = import_cv2("reading video")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0) or None
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.expected_frames = count if count > 0 and not spec.live else None
        self.ended_early: Optional[str] = None

    def read(self) -> Optional[np.ndarray]:
        """The next BGR frame, or None at the end of a file. A live source that stops is
        reopened; VideoSourceError when it cannot be."""
        while True:
            ok, frame = self.capture.read()
            if ok and frame is not None:
                self.frames += 1
                return frame
            if not self.spec.live:
                if self.expected_frames and self.frames < self.expected_frames:
                    self.ended_early = (f"{self.spec.target} ended at frame {self.frames} of the "
                                        f"{self.expected_frames} its header announces (truncated or corrupt?)")
                return None
            self._reconnect()

    def _reconnect(self) -> None:
        while self.reconnected < self.reconnects:
            self.reconnected += 1
            print(f"{self.spec} stopped after {self.frames} frames; reconnecting "
                  f"({self.reconnected}/{self.reconnects}) ...", file=self.log, flush=True)
            self.capture.release()
            time.sleep(self.delay)
            try:
                self.capture = self.opener(self.spec)
                return
            except VideoSourceError as exc:
                print(f"  {exc}", file=self.log, flush=True)
        raise VideoSourceError(f"{self.spec} died after {self.frames} frames and could not be reopened "
                               f"({self.reconnects} attempts, {self.delay:g} s apart)")

    def close(self) -> None:
        self.capture.release()


class VideoWriter:
    """Writes BGR frames; ``path`` is a file (codec from its extension) or a GStreamer
    pipeline ending in a sink. The file appears at ``path`` only when close() finalises it."""

    def __init__(self, path: str, fps: float, size: tuple):
        cv2 = import_cv2("writing video")
        self.path, self.size = path, (int(size[0]), int(size[1]))  # (width, height)
        self.frames = 0
        if "!" in path:
            self.partial = None
            self.writer = cv2.VideoWriter(path, cv2.CAP_GSTREAMER, 0, fps, self.size)
        else:
            stem, ext = os.path.splitext(path)
            if ext.lower() not in FOURCC:
                raise ValueError(f"{path}: unknown video extension; use one of {', '.join(FOURCC)}")
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.partial = f"{stem}.partial{ext}"
            self.writer = cv2.VideoWriter(self.partial, cv2.VideoWriter_fourcc(*FOURCC[ext.lower()]), fps, self.size)
        if not self.writer.isOpened():
            raise VideoSourceError(f"cannot write video to {path} (codec {FOURCC.get(os.path.splitext(path)[1])}, "
                                   f"{self.size[0]}x{self.size[1]} at {fps:g} fps)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finalise the file (index / moov atom written) and move it into place."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if self.partial:
            os.replace(self.partial, self.path)
