"""A one-line progress bar on stderr for long work (audit export, verify, report, render).

Drawn only on a terminal, or when asked (``--progress``): piped or redirected output
stays free of carriage returns and half-drawn lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``label [#######-------]  45%  450,000/1,000,000 events  98,512/s`` on one line."""

    def __init__(self, label: str, out: TextIO, *, unit: str = "events", width: int = 30) -> None:
        self.label = label
        self.out = out
        self.unit = unit
        self.width = width
        self.started = time.perf_counter()
        self.shown = 0.0
        self.last = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self.last = (done, total)
        now = time.perf_counter()
        if now - self.shown >= 0.1 or done >= total:
            self.shown = now
            self._draw(done, total, now)

    def _draw(self, done: int, total: int, now: float) -> None:
        share = done / total if total else 1.0
        filled = int(self.width * share)
        rate = done / max(now - self.started, 1e-9)
        self.out.write(f"\r{self.label} [{'#' * filled}{'-' * (self.width - filled)}] "
                       f"{share:4.0%}  {done:,}/{total:,} {self.unit}  {rate:,.0f}/s ")
        self.out.flush()

    def close(self) -> None:
        self._draw(*self.last, time.perf_counter())
        self.out.write("\n")
        self.out.flush()


def progress_bar(label: str, *, forced: bool, unit: str = "events",
                 out: TextIO | None = None) -> ProgressBar | None:
    """A bar on ``out`` (stderr, looked up now) if it is a terminal or ``forced``, else
    None: the caller then reports no progress at all."""
    out = out if out is not None else sys.stderr
    return ProgressBar(label, out, unit=unit) if forced or out.isatty() else None
