"""What the operator dashboard shows, read from this process's projections: recent
sessions (every org), usage by day and tier, recent webhook deliveries with their
attempts, and worker capacity. Read-only; served under ``/ops`` behind the operator key.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from protoface.api.capacity import LOST_AFTER, Capacity
from protoface.domain.billing import UsageRecord
from protoface.domain.session import Session
from protoface.domain.webhook import DeliveryAttempted
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.projections.webhooks.deliveries import RecentDeliveries


class SessionRow(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    status: str
    avatar_id: str
    quality: str
    created_at: datetime
    time_to_first_frame_ms: int | None
    billable_seconds: int  # the live heartbeat counter
    credits: float | None  # from the usage ledger, once a worker claimed the session
    frames: int
    failure_code: str | None
    end_reason: str | None


class UsageDay(msgspec.Struct, kw_only=True):
    day: str  # YYYY-MM-DD (UTC) of the sessions' start
    quality: str
    billable_seconds: int
    sessions: int


class Attempt(msgspec.Struct, kw_only=True):
    attempt: int
    at: datetime
    status: int | None
    outcome: str
    error: str | None
    next_attempt_at: datetime | None


class DeliveryRow(msgspec.Struct, kw_only=True):
    webhook_id: str
    endpoint_id: str
    org_id: str
    event_type: str
    session_id: str | None
    attempts: list[Attempt]


class WorkerRow(msgspec.Struct, kw_only=True):
    worker_id: str
    slots: int
    free: int
    sessions: int
    draining: bool
    live: bool
    seen_seconds_ago: float


class Overview(msgspec.Struct, kw_only=True):
    object: str = "ops.overview"
    at: datetime
    counts_by_status: dict[str, int]
    sessions: list[SessionRow]
    usage_by_day: list[UsageDay]
    deliveries: list[DeliveryRow]
    workers: list[WorkerRow]


class OpsReader:
    """What the dashboard reads, injected as ``ops``: this process's projections
    (sessions, usage, recent deliveries) and the workers' capacity."""

    def __init__(self, sessions: SessionsModel, usage: UsageModel,
                 deliveries: RecentDeliveries, capacity: Capacity) -> None:
        self.sessions = sessions
        self.usage = usage
        self.deliveries = deliveries
        self.capacity = capacity

    def overview(self, *, statuses: frozenset[str] | None, limit: int, days: int,
                 now: datetime) -> Overview:
        return overview(sessions=self.sessions, usage=self.usage, deliveries=self.deliveries,
                        capacity=self.capacity, statuses=statuses, limit=limit, days=days,
                        now=now)


def overview(
    *, sessions: SessionsModel, usage: UsageModel, deliveries: RecentDeliveries,
    capacity: Capacity, statuses: frozenset[str] | None, limit: int, days: int, now: datetime,
) -> Overview:
    return Overview(
        at=now,
        counts_by_status=dict(Counter(s.status for s in sessions.sessions.values())),
        sessions=[_session_row(s, usage.records.get(s.id))
                  for s in _newest(sessions.sessions, statuses, limit)],
        usage_by_day=usage_by_day(usage.records.values(), now - timedelta(days=days)),
        deliveries=[_delivery_row(a) for a in deliveries.newest(limit)],
        workers=_worker_rows(capacity),
    )


def _newest(
    by_id: dict[str, Session], statuses: frozenset[str] | None, limit: int
) -> list[Session]:
    """Newest first. The model keeps sessions in creation order (a dict keeps insertion
    order), so walk it backwards and stop at ``limit``: no copy, no sort."""
    found: list[Session] = []
    for state in reversed(by_id.values()):
        if statuses is None or state.status in statuses:
            found.append(state)
            if len(found) == limit:
                break
    return found


def _session_row(state: Session, record: UsageRecord | None) -> SessionRow:
    ttff = None
    if state.first_frame_at is not None:
        ttff = round((state.first_frame_at - state.created_at).total_seconds() * 1000)
    return SessionRow(
        id=state.id, org_id=state.org_id, status=state.status, avatar_id=state.avatar_id,
        quality=state.quality, created_at=state.created_at, time_to_first_frame_ms=ttff,
        billable_seconds=state.billable_seconds,
        credits=None if record is None else record.credits_milli / 1000,
        frames=state.frames, failure_code=state.failure.code if state.failure else None,
        end_reason=state.end_reason,
    )


def usage_by_day(records: Iterable[UsageRecord], since: datetime) -> list[UsageDay]:
    """Billable seconds and sessions per (UTC day of start, tier), oldest day first."""
    seconds: Counter[tuple[str, str]] = Counter()
    count: Counter[tuple[str, str]] = Counter()
    for record in records:
        if record.started_at >= since:
            key = (record.started_at.date().isoformat(), record.quality)
            seconds[key] += record.billable_seconds
            count[key] += 1
    return [UsageDay(day=day, quality=quality, billable_seconds=seconds[(day, quality)],
                     sessions=count[(day, quality)]) for day, quality in sorted(count)]


def _delivery_row(attempts: list[DeliveryAttempted]) -> DeliveryRow:
    first = attempts[0]
    return DeliveryRow(
        webhook_id=first.webhook_id, endpoint_id=first.endpoint_id, org_id=first.org_id,
        event_type=first.event_type, session_id=first.session_id,
        attempts=[Attempt(attempt=a.attempt, at=a.at, status=a.status, outcome=a.outcome,
                          error=a.error, next_attempt_at=a.next_attempt_at) for a in attempts],
    )


def _worker_rows(capacity: Capacity) -> list[WorkerRow]:
    now, limit = time.monotonic(), LOST_AFTER * capacity.heartbeat
    rows = [
        WorkerRow(worker_id=info.worker_id, slots=info.slots, free=info.free,
                  sessions=len(info.sessions), draining=info.draining,
                  live=now - seen <= limit, seen_seconds_ago=round(now - seen, 1))
        for info, seen in capacity.workers.values()
    ]
    return sorted(rows, key=lambda r: (not r.live, r.worker_id))
