"""Per-stage wall-clock timing (molding, inference, unmolding) for every detector."""

from __future__ import annotations

import time
from typing import Dict, Optional


class StageClock:
    """Adds the seconds since the previous lap to ``timings[name]``."""

    def __init__(self, timings: Optional[Dict[str, float]]):
        self.timings = {} if timings is None else timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now
