"""Avatars: the stock catalog every org can use, and the custom Avatar aggregate.

Stock avatars are fixed ids that are always ``ready`` (built from portraits shipped
with the worker; they have no events). A custom avatar is event-sourced::

    avatar.created ─→ avatar.built  (ready)
          │      └──→ avatar.failed (failed, with a human failure_reason)
          └─────────────────────────→ avatar.deleted (from any state; absorbs everything)

Its source image and built asset live in an object store under keys the events
carry; the events never carry image bytes. The plan's ``custom_avatar_slots`` is
decided here on the count of the org's non-deleted custom avatars; the service
appends ``avatar.created`` conditionally on the org's previous creation, so
concurrent uploads cannot overshoot it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from protoface.domain.errors import CONFLICT, INVALID, NOT_FOUND, QUOTA, Rejected
from protoface.domain.plans import Plan


class StockAvatar(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    id: str
    name: str
    default_voice: str | None = None
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


STOCK_AVATARS: dict[str, StockAvatar] = {
    a.id: a
    for a in (
        StockAvatar(id="av_stock_001", name="Stock Avatar 001", default_voice="Charon"),
        StockAvatar(id="av_stock_002", name="Stock Avatar 002", default_voice="Aoede"),
        StockAvatar(id="av_stock_003", name="Stock Avatar 003", default_voice="Puck"),
    )
}

Status = Literal["processing", "ready", "failed", "deleted"]
DEFAULT_NAME: Final = "Custom Avatar"
DEFAULT_RUNTIME: Final = "avtr1"
RUNTIME_TYPES: Final[frozenset[str]] = frozenset({"avtr1", "mock"})
MAX_NAME_LENGTH: Final = 200


# ── Events: the storage format. Versioned by type name; new fields get defaults. ──


class AvatarEvent(msgspec.Struct, gc=False, frozen=True, kw_only=True, tag_field="type"):
    id: str  # the event id (``evt_…``); also the JetStream Nats-Msg-Id
    avatar_id: str
    org_id: str
    at: datetime


class SourceImage(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Where the uploaded portrait is stored, and what it is."""

    key: str
    sha256: str
    size: int
    content_type: str  # the sniffed type: image/png or image/jpeg
    width: int = 0
    height: int = 0


class AvatarCreated(AvatarEvent, frozen=True, tag="avatar.created"):
    name: str
    runtime_type: str
    source: SourceImage
    api_key_id: str | None = None


class AvatarBuilt(AvatarEvent, frozen=True, tag="avatar.built"):
    asset_key: str
    asset_sha256: str
    asset_size: int = 0
    worker_id: str | None = None


class AvatarFailed(AvatarEvent, frozen=True, tag="avatar.failed"):
    failure_reason: str
    worker_id: str | None = None


class AvatarDeleted(AvatarEvent, frozen=True, tag="avatar.deleted"):
    pass


Event = AvatarCreated | AvatarBuilt | AvatarFailed | AvatarDeleted


# ── Fold ────────────────────────────────────────────────────────────────────────


class Avatar(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """A custom avatar's state: a plain value, rebuilt by folding its events."""

    id: str
    org_id: str
    name: str
    runtime_type: str
    status: Status
    created_at: datetime
    source: SourceImage
    asset_key: str | None = None
    asset_sha256: str | None = None
    failure_reason: str | None = None
    deleted_at: datetime | None = None

    @property
    def stored_keys(self) -> tuple[str, ...]:
        """Every object the avatar owns in the store (purged on delete)."""
        return (self.source.key,) + ((self.asset_key,) if self.asset_key else ())


def evolve(state: Avatar | None, event: Event) -> Avatar | None:
    """Apply one event. Unknown orderings leave the state as it is (the log is the truth)."""
    if isinstance(event, AvatarCreated):
        return state or Avatar(
            id=event.avatar_id, org_id=event.org_id, name=event.name,
            runtime_type=event.runtime_type, status="processing", created_at=event.at,
            source=event.source,
        )
    if state is None or state.status == "deleted":
        return state
    match event:
        case AvatarBuilt(asset_key=key, asset_sha256=digest):
            if state.status != "processing":
                return state
            return msgspec.structs.replace(state, status="ready", asset_key=key,
                                           asset_sha256=digest)
        case AvatarFailed(failure_reason=reason):
            if state.status != "processing":
                return state
            return msgspec.structs.replace(state, status="failed", failure_reason=reason)
        case AvatarDeleted(at=at):
            return msgspec.structs.replace(state, status="deleted", deleted_at=at)
    return state


def fold(events: Iterable[object], state: Avatar | None = None) -> Avatar | None:
    """Fold the avatar events among ``events`` (an aggregate's history as loaded)."""
    for event in events:
        if isinstance(event, AvatarCreated | AvatarBuilt | AvatarFailed | AvatarDeleted):
            state = evolve(state, event)
    return state


# ── Commands and decisions ──────────────────────────────────────────────────────


class Command(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    avatar_id: str
    org_id: str
    now: datetime


class Create(Command, frozen=True):
    name: str
    runtime_type: str
    source: SourceImage
    plan: Plan
    custom_avatars: int  # the org's non-deleted custom avatars right now
    api_key_id: str | None = None


class RecordBuilt(Command, frozen=True):
    """A worker built the asset and stored it under ``asset_key``."""

    asset_key: str
    asset_sha256: str
    asset_size: int
    worker_id: str | None = None


class RecordFailed(Command, frozen=True):
    failure_reason: str
    worker_id: str | None = None


class Delete(Command, frozen=True):
    pass


NewId = Callable[[], str]


def not_found(avatar_id: str) -> Rejected:
    return Rejected(NOT_FOUND, "avatar_not_found", f"No avatar {avatar_id!r}.", "avatar_id")


def decide(command: Command, state: Avatar | None, new_id: NewId) -> list[Event]:
    """The events ``command`` produces from ``state``; ``[]`` when already done.

    Another org's avatar is indistinguishable from a missing one (``avatar_not_found``).
    Build results for an avatar that is no longer processing (redelivered jobs, a
    delete that came first) decide nothing.
    """
    if isinstance(command, Create):
        return _create(command, state, new_id)
    if state is None or state.org_id != command.org_id or state.status == "deleted":
        if isinstance(command, RecordBuilt | RecordFailed) and state is not None:
            return []  # the build finished after a delete: nothing to record
        raise not_found(command.avatar_id)
    aid, org, at = state.id, state.org_id, command.now
    match command:
        case RecordBuilt():
            if state.status != "processing":
                return []
            return [AvatarBuilt(id=new_id(), avatar_id=aid, org_id=org, at=at,
                                asset_key=command.asset_key,
                                asset_sha256=command.asset_sha256,
                                asset_size=command.asset_size, worker_id=command.worker_id)]
        case RecordFailed():
            if state.status != "processing":
                return []
            return [AvatarFailed(id=new_id(), avatar_id=aid, org_id=org, at=at,
                                 failure_reason=command.failure_reason,
                                 worker_id=command.worker_id)]
        case Delete():
            return [AvatarDeleted(id=new_id(), avatar_id=aid, org_id=org, at=at)]
    raise TypeError(f"not an avatar command: {command!r}")


def _create(command: Create, state: Avatar | None, new_id: NewId) -> list[Event]:
    if state is not None:
        return []  # creation is idempotent on the avatar id
    if command.runtime_type not in RUNTIME_TYPES:
        raise Rejected("unprocessable", "unsupported_runtime_type",
                       f"runtime_type must be one of {sorted(RUNTIME_TYPES)}.", "runtime_type")
    if not command.name.strip() or len(command.name) > MAX_NAME_LENGTH:
        raise Rejected(INVALID, "invalid_value",
                       f"name must be 1 to {MAX_NAME_LENGTH} characters.", "name")
    admit(command.plan, command.custom_avatars)
    return [AvatarCreated(
        id=new_id(), avatar_id=command.avatar_id, org_id=command.org_id, at=command.now,
        name=command.name, runtime_type=command.runtime_type, source=command.source,
        api_key_id=command.api_key_id,
    )]


def admit(plan: Plan, custom_avatars: int) -> None:
    """Refuse an upload when the org already holds its plan's custom avatar slots."""
    if custom_avatars >= plan.custom_avatar_slots:
        raise Rejected(
            QUOTA, "custom_avatar_slots",
            f"Your {plan.name} plan allows {plan.custom_avatar_slots} custom avatar(s); "
            "delete one or upgrade.",
        )


def require_ready(state: Avatar) -> None:
    """A session can only run on a ready avatar."""
    if state.status != "ready":
        raise Rejected(CONFLICT, "avatar_not_ready",
                       f"Avatar {state.id} is {state.status}, not ready.", "avatar_id")
