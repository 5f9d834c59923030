"""Worker capacity as the API sees it: free slots of live workers, from the registry.

A worker's entry that has not changed for ``LOST_AFTER`` heartbeats no longer
counts (the worker is presumed dead; the supervisor fails its sessions).
"""

from __future__ import annotations

import logging
import time

from protoface.domain.errors import Rejected
from protoface.streams.eventlog import EventLog
from protoface.streams.work import WorkerInfo, WorkerRegistry

LOST_AFTER = 2.5

log = logging.getLogger("protoface.capacity")


class Capacity:
    def __init__(self, heartbeat_seconds: float, policy: str) -> None:
        self.heartbeat = heartbeat_seconds
        self.policy = policy  # "reject": 503 at_capacity; "queue": accept and wait
        self.workers: dict[str, tuple[WorkerInfo, float]] = {}
        self._watch: object | None = None

    async def start(self, log: EventLog) -> None:
        registry = await WorkerRegistry.open(log)
        self._watch = await registry.watch(self._on_change)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()  # type: ignore[attr-defined]

    async def _on_change(self, worker_id: str, info: WorkerInfo | None) -> None:
        if info is None:
            self.workers.pop(worker_id, None)
        else:
            self.workers[worker_id] = (info, time.monotonic())

    def free_slots(self) -> int:
        now = time.monotonic()
        limit = LOST_AFTER * self.heartbeat
        return sum(
            info.free for info, seen in self.workers.values()
            if now - seen <= limit and not info.draining
        )

    def live_workers(self) -> int:
        now, limit = time.monotonic(), LOST_AFTER * self.heartbeat
        return sum(1 for _, seen in self.workers.values() if now - seen <= limit)

    def check(self, waiting: int) -> None:
        """Refuse a new session when every free slot is already spoken for."""
        if self.policy == "queue":
            return
        free = self.free_slots()
        if free - waiting <= 0:
            log.info("at capacity", extra={"free_slots": free, "waiting": waiting})
            raise Rejected("service_unavailable", "at_capacity",
                           "No worker has a free slot right now; retry shortly.")
