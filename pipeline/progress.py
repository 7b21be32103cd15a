"""Progress lines for long passes over images: count, rate and time left, at most every few seconds."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("deploy")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """`  what: done/total images (rate images/s, ETA t)`, logged when `every_s` has passed since the last line."""

    def __init__(self, what: str, total: int, unit: str = "images", every_s: float = 15.0):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            rate = self.rate
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info("  %s: %d/%d %s (%.1f %s/s, ETA %s)", self.what, self.done, self.total, self.unit, rate,
                     self.unit, _duration(eta))

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0
