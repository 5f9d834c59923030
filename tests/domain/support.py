"""Shared vocabulary for the domain specifications: a clock, an id source, and
"given" builders that write session histories as plain events.

Nothing here calls ``decide``: histories are spelled out event by event, so the
tests that use them state what the log holds, not what the decider would produce.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import settings

from protoface.domain import session as s

# Modest, deterministic-enough settings: the whole domain suite stays well under 20 s.
PROPERTY = settings(max_examples=200, deadline=None)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SID = "sess_01JN0000000000000000000001"
ORG = "org_01JN0000000000000000000001"
AVATAR = "av_stock_001"
WORKER = "wrk_a"
OTHER_WORKER = "wrk_b"


def t(seconds: float) -> datetime:
    """``seconds`` after the start of every scenario."""
    return T0 + timedelta(seconds=seconds)


class Ids:
    """A ``new_id`` that hands out ``evt_000001``, ``evt_000002``, … so expected events can
    name their ids."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> str:
        self.issued += 1
        return f"evt_{self.issued:06d}"


class Clock:
    """A fixed clock that moves forward by ``step`` every time it is read."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
        self.current = start
        self.step = step

    def __call__(self) -> datetime:
        now = self.current
        self.current += self.step
        return now


# ── Given: events as the log stores them ────────────────────────────────────────

_ENVELOPE = {"session_id": SID, "org_id": ORG}


def created(at: datetime = T0, **overrides: object) -> s.SessionCreated:
    fields: dict[str, object] = {
        "avatar_id": AVATAR, "quality": "standard", "idle_timeout_seconds": 60,
        "max_duration_seconds": 600, "metadata": {"customer": "acme"},
        "transport": s.PipecatTransport(), "api_key_id": "key_1",
    }
    fields.update(overrides)
    return s.SessionCreated(id="given_created", **_ENVELOPE, at=at, **fields)  # type: ignore[arg-type]


def queued(at: datetime = T0) -> s.SessionQueued:
    return s.SessionQueued(id="given_queued", **_ENVELOPE, at=at)


def starting(at: datetime, worker_id: str = WORKER) -> s.SessionStarting:
    return s.SessionStarting(id="given_starting", **_ENVELOPE, at=at, worker_id=worker_id)


def first_frame(at: datetime) -> s.SessionFirstFrame:
    return s.SessionFirstFrame(id="given_first_frame", **_ENVELOPE, at=at)


def heartbeat(at: datetime, frames: int, billable_seconds: int) -> s.SessionHeartbeat:
    return s.SessionHeartbeat(
        id="given_heartbeat", **_ENVELOPE, at=at, frames=frames, billable_seconds=billable_seconds
    )


def ending(at: datetime, reason: s.EndReason = "requested") -> s.SessionEnding:
    return s.SessionEnding(id="given_ending", **_ENVELOPE, at=at, reason=reason)


def ended(at: datetime, reason: s.EndReason = "completed", frames: int = 0,
          billable_seconds: int = 0) -> s.SessionEnded:
    return s.SessionEnded(id="given_ended", **_ENVELOPE, at=at, reason=reason, frames=frames,
                          billable_seconds=billable_seconds)


def failed(at: datetime, code: str = s.INTERNAL, message: str = "boom", frames: int = 0,
           billable_seconds: int = 0) -> s.SessionFailed:
    return s.SessionFailed(id="given_failed", **_ENVELOPE, at=at, code=code, message=message,
                           frames=frames, billable_seconds=billable_seconds)


def canceled(at: datetime) -> s.SessionCanceled:
    return s.SessionCanceled(id="given_canceled", **_ENVELOPE, at=at)


# One history per status, each step one second after the previous one.
HISTORIES: dict[s.Status, list[s.Event]] = {
    "created": [created(t(0))],
    "queued": [created(t(0)), queued(t(0))],
    "starting": [created(t(0)), queued(t(0)), starting(t(1))],
    "running": [created(t(0)), queued(t(0)), starting(t(1)), first_frame(t(2)),
                heartbeat(t(3), frames=30, billable_seconds=1)],
    "ending": [created(t(0)), queued(t(0)), starting(t(1)), first_frame(t(2)),
               heartbeat(t(3), frames=30, billable_seconds=1), ending(t(4), "idle_timeout")],
    "ended": [created(t(0)), queued(t(0)), starting(t(1)), first_frame(t(2)),
              heartbeat(t(3), frames=30, billable_seconds=1), ending(t(4), "idle_timeout"),
              ended(t(5), "idle_timeout", frames=40, billable_seconds=2)],
    "failed": [created(t(0)), queued(t(0)), starting(t(1)),
               failed(t(2), s.WORKER_LOST, "heartbeat lost")],
    "canceled": [created(t(0)), queued(t(0)), canceled(t(1))],
}
NON_TERMINAL: tuple[s.Status, ...] = ("created", "queued", "starting", "running", "ending")
TERMINAL: tuple[s.Status, ...] = ("ended", "failed", "canceled")


def given(status: s.Status) -> s.Session:
    """The state of a session whose log brought it to ``status``."""
    state = s.fold(HISTORIES[status])
    assert state is not None and state.status == status, (status, state)
    return state


def create_command(now: datetime = T0, **overrides: object) -> s.Create:
    fields: dict[str, object] = {
        "org_id": ORG, "avatar_id": AVATAR, "quality": "standard",
        "idle_timeout_seconds": 60, "max_duration_seconds": 600,
        "metadata": {"customer": "acme"}, "transport": s.PipecatTransport(),
        "api_key_id": "key_1",
    }
    fields.update(overrides)
    return s.Create(session_id=SID, now=now, **fields)  # type: ignore[arg-type]
