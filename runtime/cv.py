"""OpenCV, imported where drawing and video need it, with a message that says how to get it.

On servers and CI, ``pip install 'mrcnn-edge[video]'`` brings opencv-python-headless. On a
Jetson, use JetPack's own OpenCV (built with GStreamer and the hardware codecs): install
the runtime without the ``video`` extra, so no pip OpenCV shadows it.
"""

from __future__ import annotations


class OpenCVUnavailableError(ImportError):
    """cv2 cannot be imported; the message says what needs it and how to install it."""


def import_cv2(purpose: str):
    try:
        import cv2
    except ImportError as exc:
        raise OpenCVUnavailableError(
            f"{purpose} needs OpenCV: pip install 'mrcnn-edge[video]' (opencv-python-headless); on a Jetson use "
            f"JetPack's OpenCV (sudo apt install python3-opencv) and do not pip-install one over it") from exc
    return cv2
