"""Worker capacity as the API sees it: each live worker's free room, from the registry.

A worker announces its capacity in cost units, the units its sessions use and what a
session of each tier costs it (``domain.capacity``). A create is admitted when some
live worker fits one more session of its tier after the sessions already waiting for a
worker are placed (each where it fits with the most units left). A worker announced
by an older version (no costs) fits any tier while it has a free slot.

This is a fast, local estimate: two API processes may both admit the last room. The
worker checks again before it claims (it never claims what it cannot fit), so a
session admitted past a full worker waits in the queue until room frees.

A worker's entry that has not changed for ``LOST_AFTER`` heartbeats no longer
counts (the worker is presumed dead; the supervisor fails its sessions).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protoface.domain import capacity as cost
from protoface.domain.errors import Rejected
from protoface.streams.eventlog import EventLog
from protoface.streams.work import RegistryWatch, WorkerInfo, WorkerRegistry

LOST_AFTER = 2.5
QUIET_AFTER = 1.5  # heartbeats of silence after which the registry's watch restarts

log = logging.getLogger("protoface.capacity")


@dataclass
class _Room:
    """One worker's room while waiting sessions are placed on it."""

    info: WorkerInfo
    used: float
    free: int

    def fits(self, tier: str) -> bool:
        if not self.info.costs:  # an older worker: slots only
            return self.free > 0
        return cost.fits(self.info.costs, self.info.capacity, self.used, self.free, tier)

    def take(self, tier: str) -> None:
        self.used += self.info.costs.get(tier, 0.0)
        self.free -= 1

    @property
    def left(self) -> float:
        return self.info.capacity - self.used


class Capacity:
    def __init__(self, heartbeat_seconds: float, policy: str) -> None:
        self.heartbeat = heartbeat_seconds
        self.policy = policy  # "reject": 503 at_capacity; "queue": accept and wait
        self.workers: dict[str, tuple[WorkerInfo, float]] = {}
        self._watch: RegistryWatch | None = None
        self._reserved: list[str] = []  # tiers of creates admitted here, not yet read back

    async def start(self, log: EventLog) -> None:
        registry = await WorkerRegistry.open(log)
        # Workers announce every heartbeat: a watch silent for more than a loss period's
        # share of that is started again before any live worker would read as lost.
        self._watch = await registry.watch(self._on_change,
                                           quiet_seconds=QUIET_AFTER * self.heartbeat)

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()

    async def _on_change(self, worker_id: str, info: WorkerInfo | None) -> None:
        if info is None:
            self.workers.pop(worker_id, None)
        else:
            self.workers[worker_id] = (info, time.monotonic())

    def live(self) -> list[WorkerInfo]:
        """Workers heard from within the loss period, in id order."""
        now, limit = time.monotonic(), LOST_AFTER * self.heartbeat
        return sorted((info for info, seen in self.workers.values() if now - seen <= limit),
                      key=lambda i: i.worker_id)

    def free_slots(self) -> int:
        return sum(i.free for i in self.live() if not i.draining)

    def live_workers(self) -> int:
        return len(self.live())

    def rooms(self) -> list[_Room]:
        """The live workers taking sessions now (not draining, not overloaded)."""
        return [_Room(i, i.used, i.free) for i in self.live()
                if not i.draining and i.overloaded is None]

    def fits(self, tier: str, waiting: Iterable[str] = ()) -> bool:
        """Whether a session of ``tier`` fits on some worker once ``waiting`` (the tiers of
        sessions queued for a worker) are placed."""
        rooms = self.rooms()
        for queued in waiting:
            placed = [r for r in rooms if r.fits(queued)]
            if placed:  # one that fits nowhere waits, and takes nobody's room
                max(placed, key=lambda r: (r.left, r.free)).take(queued)
        return any(r.fits(tier) for r in rooms)

    def has_room(self) -> bool:
        """Whether some live worker takes a session of some tier now."""
        return any(r.fits(t) for r in self.rooms() for t in (r.info.costs or ("any",)))

    @contextlib.contextmanager
    def reserve(self, tier: str, waiting: Iterable[str] = ()) -> Iterator[None]:
        """Admit a session of ``tier`` (else raise ``at_capacity``) and hold its room for
        the block: the creates this process has admitted but the read model does not
        show as waiting yet are placed like waiting ones."""
        self.check(tier, [*waiting, *self._reserved])
        self._reserved.append(tier)
        try:
            yield
        finally:
            self._reserved.remove(tier)

    def check(self, tier: str, waiting: Iterable[str] = ()) -> None:
        """Refuse a new session of ``tier`` when no live worker fits it."""
        if self.policy == "queue":
            return
        waiting = list(waiting)
        if not self.fits(tier, waiting):
            log.info("at capacity", extra={"quality": tier, "waiting": len(waiting),
                                           "workers": self.live_workers()})
            raise Rejected("service_unavailable", "at_capacity",
                           "No worker has room for a session of this quality right now; "
                           "retry shortly.")
