"""Whether this worker's frames keep time: the late share of its pacers' ticks.

Every session's pacer (``worker.pipeline``) records each tick here, late (its video
frame dropped) or not. Over the last ``WINDOW`` seconds, more than ``LATE_LIMIT`` of
them late means the worker has more sessions than it renders in real time (a probe
that measured a quiet machine, a noisy neighbour): it stops claiming until the share
falls back under the limit. Running sessions go on; see docs/scale-out.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Gauge

log = logging.getLogger("protoface.worker.capacity")

WINDOW = 5.0  # seconds
LATE_LIMIT = 0.01
# Fewer ticks than this in the window say nothing either way (one session's first
# ticks, say): the worker is not called overloaded on them.
MIN_TICKS = 50

OVERLOADED = Gauge("protoface_worker_overloaded",
                   "1 while this worker has stopped claiming because its frames run late.")
LATE_SHARE = Gauge("protoface_worker_late_share",
                   f"Share of this worker's ticks whose frame was late, last {WINDOW:.0f} s.")


class LateWindow:
    """Ticks and late ticks over the last ``window`` seconds, in one-second buckets."""

    def __init__(self, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, ticks, late]

    def record(self, late: bool) -> None:
        second = math.floor(self.clock())
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += int(late)

    def counts(self) -> tuple[int, int]:
        """(ticks, late ticks) within the window."""
        oldest = self.clock() - self.window
        while self._buckets and self._buckets[0][0] + 1 <= oldest:
            self._buckets.popleft()
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)


# The pacers of this process record here: a process runs one worker.
TICKS = LateWindow()


class Overload:
    """The worker's verdict on its own pacing, with its transitions logged."""

    def __init__(self, ticks: LateWindow = TICKS, limit: float = LATE_LIMIT) -> None:
        self.ticks = ticks
        self.limit = limit
        self.reason: str | None = None  # set while overloaded

    def check(self, worker_id: str) -> str | None:
        """Why this worker must not claim now, or ``None``."""
        total, late = self.ticks.counts()
        share = late / total if total else 0.0
        LATE_SHARE.set(share)
        if total >= MIN_TICKS and share > self.limit:
            if self.reason is None:
                log.warning("worker overloaded: not claiming", extra={
                    "worker_id": worker_id, "late_share": round(share, 4), "ticks": total})
            self.reason = (f"{share:.1%} of frames late over the last "
                           f"{self.ticks.window:.0f} s (limit {self.limit:.0%})")
        elif self.reason is not None and share <= self.limit:
            log.info("worker recovered: claiming again", extra={
                "worker_id": worker_id, "late_share": round(share, 4), "ticks": total})
            self.reason = None
        OVERLOADED.set(1 if self.reason else 0)
        return self.reason
