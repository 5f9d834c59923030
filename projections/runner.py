"""Keeps read models up to date by following the event log.

The API waits on :meth:`Projector.wait_for` with the sequence its own append
returned, so a read right after a write sees that write (read-your-writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Protocol

from prometheus_client import Gauge

from protoface.domain.events import Event
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, LogUnavailable, Stored

log = logging.getLogger("protoface.projections")

APPLIED_SEQ = Gauge("protoface_projection_applied_seq", "Last event log sequence applied.")
LAG_SECONDS = Gauge(
    "protoface_projection_lag_seconds", "Age of the newest event when the projection applied it."
)


class Model(Protocol):
    last_seq: int

    def apply(self, seq: int, event: Event) -> None: ...


class Projector:
    """Folds the events on ``subject`` (default: all) into ``models``. Only the
    process's main projector reports the ``protoface_projection_*`` metrics."""

    def __init__(
        self, log: EventLog, models: list[Model], *, subject: str = subjects.ALL_EVENTS,
        metrics: bool = True,
    ) -> None:
        self.log = log
        self.models = models
        self.subject = subject
        self.metrics = metrics
        self.last_seq = min((m.last_seq for m in models), default=0)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        self._stop: Callable[[], Awaitable[None]] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop = await self.log.follow(self.last_seq + 1, self._on_event, self.subject)
        self._watchdog = asyncio.create_task(self._watch())

    async def _watch(self, every: float = 1.0, patience: int = 2) -> None:
        """Resubscribe when the log is ahead and nothing has arrived for ``patience``
        checks. After a server restart or a cluster leader change the ordered consumer
        only notices it is gone on its own heartbeat timer (10–15 s here); until then
        every write would wait for its projection and answer 503."""
        stalled, previous = 0, self.last_seq
        while True:
            await asyncio.sleep(every)
            progressed, previous = self.last_seq != previous, self.last_seq
            try:
                behind = await self._end() > self.last_seq
            except Exception:  # unreachable, or between leaders: look again next time
                continue
            stalled = stalled + 1 if behind and not progressed else 0
            if stalled >= patience:
                stalled = 0
                await self._resubscribe()

    async def _end(self) -> int:
        if self.subject == subjects.ALL_EVENTS:
            return await self.log.last_seq()
        return await self.log.version(self.subject)

    async def _resubscribe(self) -> None:
        old, self._stop = self._stop, None
        if old is not None:
            with contextlib.suppress(Exception):  # the old consumer may be long gone
                await old()
        try:
            self._stop = await self.log.follow(self.last_seq + 1, self._on_event, self.subject)
        except Exception:  # the log is not back yet: try again on the next check
            log.debug("projection resubscribe failed", exc_info=True)
            return
        log.warning("projection resubscribed", extra={"from_seq": self.last_seq + 1})

    async def catch_up(self, timeout: float = 30.0) -> None:
        """Wait until everything in the log when this was called has been applied."""
        if self.subject == subjects.ALL_EVENTS:
            end = await self.log.last_seq()
        else:
            end = await self.log.version(self.subject)
        await self.wait_for(end, timeout)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._stop is not None:
            await self._stop()
            self._stop = None

    async def _on_event(self, stored: Stored) -> None:
        if stored.seq <= self.last_seq:
            return  # delivered again after a resubscribe
        for model in self.models:
            model.apply(stored.seq, stored.event)
        self.last_seq = max(self.last_seq, stored.seq)
        if self.metrics:
            APPLIED_SEQ.set(self.last_seq)
            age = time.time() - stored.event.at.astimezone(UTC).timestamp()
            LAG_SECONDS.set(max(0.0, age))
        while self._waiters and self._waiters[0][0] <= self.last_seq:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        if seq <= self.last_seq:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiters, (seq, next(self._tie), future))
        # One timer on the future itself, not ``asyncio.wait_for`` (a second future and
        # an extra turn of the loop before the waiter wakes): every write waits here.
        timer = loop.call_later(timeout, _expire, future)
        try:
            await future
        except TimeoutError:
            # The feed stopped (the log is unreachable or restarting): callers answer
            # 503 and the client retries, rather than a 500 for a bare timeout.
            raise LogUnavailable(f"projection did not reach sequence {seq} in {timeout}s") from None
        finally:
            timer.cancel()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
