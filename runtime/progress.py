"""A small progress line for long loops (the runtime does not depend on tqdm)."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """``label  12/40  30%  3.1/s  ETA 9s`` on one line of ``stream``, redrawn at most
    every ``interval`` seconds (a new line each time when the stream is not a terminal)."""

    def __init__(self, total: Optional[int], label: str, stream: TextIO = sys.stderr, interval: float = 0.5):
        self.total, self.label, self.stream, self.interval = total, label, stream, interval
        self.done, self.start, self.shown = 0, time.perf_counter(), 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, count: int = 1, note: str = "") -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.shown >= self.interval or self.done == self.total:
            self.shown = now
            self._show(now, note)

    def _show(self, now: float, note: str) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else 0
            text = (f"{self.label} {self.done}/{self.total} {100 * self.done / self.total:3.0f}% "
                    f"{rate:.1f}/s ETA {left:.0f}s")
        else:
            text = f"{self.label} {self.done} {rate:.1f}/s"
        text += f"  {note}" if note else ""
        self.stream.write(("\r" + text.ljust(79)) if self.tty else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
