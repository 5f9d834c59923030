"""``GET /v1/status``: the roll-up of the platform's components, as this process sees
them (the event log, its projections' lag, the workers' capacity)."""

from __future__ import annotations

from datetime import datetime

from protoface.api.capacity import Capacity
from protoface.api.platform.schemas import Health, StatusComponent, StatusResponse
from protoface.projections.runner import Projector
from protoface.streams.eventlog import EventLog

# Projection lag beyond which reads are called degraded.
DEGRADED_LAG_EVENTS = 10_000


class StatusProbe:
    """What the status endpoint reads, injected as ``status_probe``."""

    def __init__(self, log: EventLog, projector: Projector, capacity: Capacity) -> None:
        self.log = log
        self.projector = projector
        self.capacity = capacity

    async def report(self, now: datetime) -> StatusResponse:
        components = [StatusComponent("api", "operational")]
        log_ok = await self.log.healthy()
        components.append(StatusComponent("event_log", "operational" if log_ok else "outage"))
        lag = (await self.log.last_seq() - self.projector.last_seq) if log_ok else 0
        components.append(StatusComponent(
            "projections", "operational" if lag < DEGRADED_LAG_EVENTS else "degraded"))
        components.append(StatusComponent("workers", self._workers()))
        return StatusResponse(_worst(components), components, now)

    def _workers(self) -> Health:
        if self.capacity.policy == "queue" and self.capacity.live_workers() == 0:
            return "degraded"  # sessions are accepted and wait for a worker
        if self.capacity.live_workers() == 0:
            return "outage"
        return "operational" if self.capacity.has_room() else "degraded"


def _worst(components: list[StatusComponent]) -> Health:
    """The log down is an outage of everything; anything else degrades the platform."""
    worst: Health = "operational"
    for c in components:
        if c.status == "outage" and c.name == "event_log":
            worst = "outage"
        elif c.status != "operational" and worst == "operational":
            worst = "degraded"
    return worst
