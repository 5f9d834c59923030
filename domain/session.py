"""The Session aggregate: its events, its fold, and its decisions.

Read top to bottom: the events (the storage format), the state they fold into,
then one ``decide`` per command. Public lifecycle::

    created → queued → starting → running → ending → ended
                 │         │          │         └──→ failed
                 └→ canceled          └──────────→ ended | failed

Terminal states (``ended``, ``failed``, ``canceled``) absorb every later command.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

import msgspec

from protoface.domain.errors import CONFLICT, Rejected

Status = Literal[
    "created", "queued", "starting", "running", "ending", "ended", "failed", "canceled"
]
Quality = Literal["mock", "lite", "standard", "pro"]
MetadataValue = str | int | float | bool | None

STATUSES: Final[tuple[Status, ...]] = (
    "created", "queued", "starting", "running", "ending", "ended", "failed", "canceled",
)
TERMINAL: Final[frozenset[Status]] = frozenset({"ended", "failed", "canceled"})
ACTIVE: Final[frozenset[Status]] = frozenset(STATUSES) - TERMINAL
# A worker owns the session in these states (it claimed it and has not finished).
WORKER_OWNED: Final[frozenset[Status]] = frozenset({"starting", "running", "ending"})

# Stable failure codes (``failure.code``).
TRANSPORT_CONNECT_FAILED = "transport_connect_failed"
TRANSPORT_UNAUTHORIZED = "transport_unauthorized"
AVATAR_LOAD_FAILED = "avatar_load_failed"
WORKER_LOST = "worker_lost"
INTERNAL = "internal"

# Why a session ended (recorded on ``session.ending`` / ``session.ended``).
EndReason = Literal[
    "requested", "max_duration", "idle_timeout", "client_disconnected", "shutdown",
    "participant_left", "credits_exhausted", "completed",
]


# ── Transports, as stored ───────────────────────────────────────────────────────


class LiveKitTransport(
    msgspec.Struct, gc=False, frozen=True, kw_only=True, tag="livekit", tag_field="type"
):
    """A customer's LiveKit room. ``worker_token_sealed`` is AEAD-sealed, never clear text.

    ``publish_on_behalf`` is the worker token's ``lk.publish_on_behalf`` attribute, read
    when the token is checked at create, so the worker need not decode the token again
    to know whose speech to take. It is internal: the public Session does not show it.
    (Stored shape: a new field always has a default, so every event ever written decodes.)
    """

    url: str
    room_name: str
    worker_token_sealed: str
    worker_identity: str = "protoface-worker"
    audio_source: Literal["data_stream", "track"] = "data_stream"
    subscribe_to_identity: str | None = None
    synthetic_audio_if_no_input: bool = False
    publish_on_behalf: str | None = None


class PipecatTransport(
    msgspec.Struct, gc=False, frozen=True, kw_only=True, tag="pipecat", tag_field="type"
):
    """Our hosted media WebSocket (``POST /v1/pipecat/sessions``)."""

    relay_mode: Literal["websocket"] = "websocket"
    video_encoding: Literal["jpeg", "rgb24"] = "jpeg"
    audio_sample_rate: int = 16_000


Transport = LiveKitTransport | PipecatTransport


class Failure(msgspec.Struct, gc=False, frozen=True):
    code: str
    message: str


# ── Events: the storage format. Versioned by type name; new fields get defaults. ──


class SessionEvent(msgspec.Struct, gc=False, frozen=True, kw_only=True, tag_field="type"):
    id: str  # the event id (``evt_…``); also the JetStream Nats-Msg-Id
    session_id: str
    org_id: str
    at: datetime


class SessionCreated(SessionEvent, frozen=True, tag="session.created"):
    avatar_id: str
    quality: Quality
    idle_timeout_seconds: int
    max_duration_seconds: int
    metadata: dict[str, MetadataValue]
    transport: Transport
    api_key_id: str | None = None


class SessionQueued(SessionEvent, frozen=True, tag="session.queued"):
    pass


class SessionStarting(SessionEvent, frozen=True, tag="session.starting"):
    worker_id: str


class SessionFirstFrame(SessionEvent, frozen=True, tag="session.first_frame"):
    pass


class SessionHeartbeat(SessionEvent, frozen=True, tag="session.heartbeat"):
    frames: int
    billable_seconds: int


class SessionEnding(SessionEvent, frozen=True, tag="session.ending"):
    reason: EndReason = "requested"


class SessionEnded(SessionEvent, frozen=True, tag="session.ended"):
    reason: EndReason = "completed"
    frames: int = 0
    billable_seconds: int = 0


class SessionFailed(SessionEvent, frozen=True, tag="session.failed"):
    code: str
    message: str
    frames: int = 0
    billable_seconds: int = 0


class SessionCanceled(SessionEvent, frozen=True, tag="session.canceled"):
    pass


Event = (
    SessionCreated | SessionQueued | SessionStarting | SessionFirstFrame | SessionHeartbeat
    | SessionEnding | SessionEnded | SessionFailed | SessionCanceled
)


# ── Fold ────────────────────────────────────────────────────────────────────────


class Session(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """A session's state: a plain value, rebuilt by folding its events."""

    id: str
    org_id: str
    avatar_id: str
    quality: Quality
    idle_timeout_seconds: int
    max_duration_seconds: int
    metadata: dict[str, MetadataValue]
    transport: Transport
    status: Status
    created_at: datetime
    api_key_id: str | None = None
    worker_id: str | None = None
    started_at: datetime | None = None
    first_frame_at: datetime | None = None
    ended_at: datetime | None = None
    failed_at: datetime | None = None
    failure: Failure | None = None
    end_reason: EndReason | None = None
    frames: int = 0
    billable_seconds: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def evolve(state: Session | None, event: Event) -> Session | None:
    """Apply one event. Unknown orderings leave the state as it is (the log is the truth)."""
    if isinstance(event, SessionCreated):
        return state or Session(
            id=event.session_id, org_id=event.org_id, avatar_id=event.avatar_id,
            quality=event.quality, idle_timeout_seconds=event.idle_timeout_seconds,
            max_duration_seconds=event.max_duration_seconds, metadata=event.metadata,
            transport=event.transport, status="created", created_at=event.at,
            api_key_id=event.api_key_id,
        )
    if state is None or state.terminal:
        return state
    match event:
        case SessionQueued():
            return msgspec.structs.replace(state, status="queued")
        case SessionStarting(worker_id=worker_id, at=at):
            return msgspec.structs.replace(
                state, status="starting", worker_id=worker_id, started_at=at
            )
        case SessionFirstFrame(at=at):
            status: Status = "ending" if state.status == "ending" else "running"
            return msgspec.structs.replace(state, status=status, first_frame_at=at)
        case SessionHeartbeat(frames=frames, billable_seconds=seconds):
            return msgspec.structs.replace(state, frames=frames, billable_seconds=seconds)
        case SessionEnding(reason=reason):
            return msgspec.structs.replace(state, status="ending", end_reason=reason)
        case SessionEnded(reason=reason, at=at):
            return msgspec.structs.replace(
                state, status="ended", ended_at=at, end_reason=state.end_reason or reason,
                frames=max(state.frames, event.frames),
                billable_seconds=max(state.billable_seconds, event.billable_seconds),
            )
        case SessionFailed(code=code, message=message, at=at):
            return msgspec.structs.replace(
                state, status="failed", failed_at=at, failure=Failure(code, message),
                frames=max(state.frames, event.frames),
                billable_seconds=max(state.billable_seconds, event.billable_seconds),
            )
        case SessionCanceled(at=at):
            return msgspec.structs.replace(state, status="canceled", ended_at=at)
    return state


def fold(events: list[Event], state: Session | None = None) -> Session | None:
    for event in events:
        state = evolve(state, event)
    return state


# ── Commands and decisions ──────────────────────────────────────────────────────


class Command(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    session_id: str
    now: datetime


class Create(Command, frozen=True):
    org_id: str
    avatar_id: str
    quality: Quality
    idle_timeout_seconds: int
    max_duration_seconds: int
    metadata: dict[str, MetadataValue]
    transport: Transport
    api_key_id: str | None = None


class Claim(Command, frozen=True):
    """A worker takes a queued session. Only one claim can win (the append is conditional)."""

    worker_id: str


class ReportFirstFrame(Command, frozen=True):
    pass


class ReportUsage(Command, frozen=True):
    """A worker heartbeat: cumulative frames and billable seconds."""

    frames: int
    billable_seconds: int


class RequestEnd(Command, frozen=True):
    """The customer (or a policy) asks the session to stop; the worker drains."""

    reason: EndReason = "requested"


class Finish(Command, frozen=True):
    """The worker has drained and left: the session is over."""

    reason: EndReason = "completed"
    frames: int = 0
    billable_seconds: int = 0


class Fail(Command, frozen=True):
    code: str
    message: str
    frames: int = 0
    billable_seconds: int = 0


NewId = Callable[[], str]


def _rejected(state: Session, command: str) -> Rejected:
    return Rejected(
        CONFLICT, "invalid_session_state", f"Cannot {command} a session that is {state.status}."
    )


def _missing(command: Command) -> Rejected:
    return Rejected("not_found", "session_not_found", f"No session {command.session_id}.")


def decide(command: Command, state: Session | None, new_id: NewId) -> list[Event]:
    """The events that ``command`` produces from ``state``; ``[]`` when already done.

    Raises :class:`Rejected` for a command the state does not allow.
    """
    if isinstance(command, Create):
        return _create(command, state, new_id)
    if state is None:
        raise _missing(command)
    at, sid, org = command.now, state.id, state.org_id
    match command:
        case Claim(worker_id=worker_id):
            if state.status == "queued":
                return [SessionStarting(id=new_id(), session_id=sid, org_id=org, at=at,
                                        worker_id=worker_id)]
            if state.worker_id == worker_id and state.status in WORKER_OWNED:
                return []
            raise Rejected(CONFLICT, "session_not_claimable", f"Session is {state.status}.")
        case ReportFirstFrame():
            if state.first_frame_at is not None or state.terminal:
                return []
            if state.status not in WORKER_OWNED:
                raise _rejected(state, "report a first frame for")
            return [SessionFirstFrame(id=new_id(), session_id=sid, org_id=org, at=at)]
        case ReportUsage(frames=frames, billable_seconds=seconds):
            return _usage(state, frames, seconds, lambda: SessionHeartbeat(
                id=new_id(), session_id=sid, org_id=org, at=at, frames=frames,
                billable_seconds=seconds))
        case RequestEnd(reason=reason):
            if state.status in ("created", "queued"):
                return [SessionCanceled(id=new_id(), session_id=sid, org_id=org, at=at)]
            if state.status in ("starting", "running"):
                return [SessionEnding(id=new_id(), session_id=sid, org_id=org, at=at,
                                      reason=reason)]
            return []  # ending already, or terminal: ending is idempotent
        case Finish(reason=reason, frames=frames, billable_seconds=seconds):
            if state.terminal:
                return []
            if state.status not in WORKER_OWNED:
                raise _rejected(state, "finish")
            return [SessionEnded(
                id=new_id(), session_id=sid, org_id=org, at=at,
                reason=state.end_reason or reason, frames=max(state.frames, frames),
                billable_seconds=max(state.billable_seconds, seconds))]
        case Fail(code=code, message=message, frames=frames, billable_seconds=seconds):
            if state.terminal:
                return []
            return [SessionFailed(
                id=new_id(), session_id=sid, org_id=org, at=at, code=code, message=message,
                frames=max(state.frames, frames),
                billable_seconds=max(state.billable_seconds, seconds))]
    raise TypeError(f"not a session command: {command!r}")


def _create(command: Create, state: Session | None, new_id: NewId) -> list[Event]:
    if state is not None:
        return []  # creation is idempotent on the session id
    sid, org, at = command.session_id, command.org_id, command.now
    return [
        SessionCreated(
            id=new_id(), session_id=sid, org_id=org, at=at, avatar_id=command.avatar_id,
            quality=command.quality, idle_timeout_seconds=command.idle_timeout_seconds,
            max_duration_seconds=command.max_duration_seconds, metadata=command.metadata,
            transport=command.transport, api_key_id=command.api_key_id,
        ),
        SessionQueued(id=new_id(), session_id=sid, org_id=org, at=at),
    ]


def _usage(
    state: Session, frames: int, seconds: int, heartbeat: Callable[[], SessionHeartbeat]
) -> list[Event]:
    if state.status not in WORKER_OWNED:
        raise _rejected(state, "report usage for")
    if frames < state.frames or seconds < state.billable_seconds:
        raise Rejected(CONFLICT, "usage_regressed", "Usage counters are cumulative.")
    if (frames, seconds) == (state.frames, state.billable_seconds):
        return []
    return [heartbeat()]
