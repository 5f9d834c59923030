"""Builders for event-log tests: fresh ids and session events written as the log stores them.

Every test makes its own org and session ids, so one NATS server and one event log
serve the whole run without tests seeing each other's aggregates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protoface.domain import ids
from protoface.domain import session as s

AVATAR = "av_stock_001"


def new_org() -> str:
    return ids.new_id(ids.ORG)


def new_session(at: datetime | None = None) -> str:
    return ids.new_id(ids.SESSION, at)


new_event_id = ids.new_event_id


def now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """A clock that moves forward by ``step`` every time it is read (ids sort by it)."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)):
        self.current = start or now()
        self.step = step

    def __call__(self) -> datetime:
        current = self.current
        self.current += self.step
        return current


def create_command(
    org_id: str, session_id: str, at: datetime | None = None, avatar_id: str = AVATAR
) -> s.Create:
    return s.Create(
        session_id=session_id, org_id=org_id, now=at or now(), avatar_id=avatar_id,
        quality="mock", idle_timeout_seconds=30, max_duration_seconds=600,
        metadata={"case": "eventlog"}, transport=s.PipecatTransport(),
    )


def creation(org_id: str, session_id: str, at: datetime | None = None) -> list[s.Event]:
    """The decision for a new session: ``[session.created, session.queued]``."""
    return s.decide(create_command(org_id, session_id, at), None, new_event_id)


def created(org_id: str, session_id: str, at: datetime | None = None) -> s.SessionCreated:
    event = creation(org_id, session_id, at)[0]
    assert isinstance(event, s.SessionCreated)
    return event


def starting(org_id: str, session_id: str, worker_id: str = "wrk_a") -> s.SessionStarting:
    return s.SessionStarting(
        id=new_event_id(), session_id=session_id, org_id=org_id, at=now(), worker_id=worker_id
    )


def heartbeat(org_id: str, session_id: str, frames: int) -> s.SessionHeartbeat:
    return s.SessionHeartbeat(
        id=new_event_id(), session_id=session_id, org_id=org_id, at=now(), frames=frames,
        billable_seconds=frames // 25,
    )
