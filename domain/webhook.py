"""The Webhook endpoint aggregate: endpoints an org registers, and every delivery attempt.

An endpoint is created with a ``whsec_`` secret (sealed before it reaches the log,
shown to the customer once), may be disabled (the receiver answered 410 Gone, or
deliveries kept failing) and deleted. Every delivery attempt is itself an event
(``webhook.delivery_attempted``), so the log is the audit trail of what we sent,
when, and what the receiver answered.

Retries follow a schedule (immediately, 5 s, 5 min, 30 min, 2 h by default) with
jitter; a receiver's ``Retry-After`` pushes the next attempt later, never earlier.
``webhook-id`` derives from the source event id, so it is stable across retries
and replays. Pure: no I/O, no clock (``now`` and the jitter come in as arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

from protoface.domain.errors import CONFLICT, Rejected

# The public lifecycle events a webhook can carry.
SESSION_TYPES: Final[dict[str, str]] = {
    "session.queued": "session.queued",
    "session.starting": "session.starting",
    "session.first_frame": "session.first_frame",
    "session.ending": "session.ending",
    "session.ended": "session.ended",
    "session.failed": "session.failed",
    "session.canceled": "session.canceled",
}
# Avatar build outcomes: the stored event type → the public webhook type.
AVATAR_TYPES: Final[dict[str, str]] = {
    "avatar.built": "avatar.ready",
    "avatar.failed": "avatar.failed",
}
EVENT_TYPES: Final[tuple[str, ...]] = (*SESSION_TYPES.values(), *AVATAR_TYPES.values())

# Seconds before attempt 1, 2, 3, … (attempt 1 is immediate). Past the end: give up.
DEFAULT_SCHEDULE: Final[tuple[float, ...]] = (0.0, 5.0, 300.0, 1800.0, 7200.0)
# A receiver's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER: Final[float] = 7200.0
# This many consecutive deliveries given up (or attempts failed) disable the endpoint.
DISABLE_AFTER_FAILURES: Final[int] = 5

Outcome = Literal["delivered", "retrying", "failed", "gone"]
EndpointStatus = Literal["enabled", "disabled", "deleted"]


def webhook_id(source_event_id: str) -> str:
    """The ``webhook-id`` of the delivery of one source event: stable across retries."""
    return "msg_" + source_event_id.split("_", 1)[-1]


# ── Events: the storage format ──────────────────────────────────────────────────


class WebhookEvent(msgspec.Struct, gc=False, frozen=True, kw_only=True, tag_field="type"):
    id: str
    org_id: str
    endpoint_id: str
    at: datetime


class EndpointCreated(WebhookEvent, frozen=True, tag="webhook.endpoint_created"):
    url: str
    secret_sealed: str  # AES-GCM sealed ``whsec_…``, bound to the endpoint id
    event_types: list[str] = msgspec.field(default_factory=list)  # empty: every type


class EndpointDisabled(WebhookEvent, frozen=True, tag="webhook.endpoint_disabled"):
    reason: str = "failing"


class EndpointDeleted(WebhookEvent, frozen=True, tag="webhook.endpoint_deleted"):
    pass


class DeliveryAttempted(WebhookEvent, frozen=True, tag="webhook.delivery_attempted"):
    webhook_id: str
    event_type: str
    session_id: str | None = None
    source_event_id: str = ""
    attempt: int = 1
    status: int | None = None  # the receiver's HTTP status; None: no answer
    error: str | None = None
    next_attempt_at: datetime | None = None
    outcome: Outcome = "delivered"


Event = EndpointCreated | EndpointDisabled | EndpointDeleted | DeliveryAttempted


# ── Fold ────────────────────────────────────────────────────────────────────────


class Endpoint(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    id: str
    org_id: str
    url: str
    secret_sealed: str
    event_types: tuple[str, ...]
    created_at: datetime
    status: EndpointStatus = "enabled"
    disabled_reason: str | None = None
    consecutive_failures: int = 0  # deliveries given up in a row

    def wants(self, event_type: str) -> bool:
        return self.status == "enabled" and (
            not self.event_types or event_type in self.event_types
        )


def evolve(state: Endpoint | None, event: Event) -> Endpoint | None:
    match event:
        case EndpointCreated():
            return state or Endpoint(
                id=event.endpoint_id, org_id=event.org_id, url=event.url,
                secret_sealed=event.secret_sealed, event_types=tuple(event.event_types),
                created_at=event.at,
            )
    if state is None or state.status == "deleted":
        return state
    match event:
        case EndpointDisabled(reason=reason):
            return msgspec.structs.replace(state, status="disabled", disabled_reason=reason)
        case EndpointDeleted():
            return msgspec.structs.replace(state, status="deleted")
        case DeliveryAttempted(outcome="delivered"):
            return msgspec.structs.replace(state, consecutive_failures=0)
        case DeliveryAttempted(outcome="failed"):
            return msgspec.structs.replace(
                state, consecutive_failures=state.consecutive_failures + 1
            )
    return state


# ── Commands and decisions ──────────────────────────────────────────────────────


class CreateEndpoint(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    endpoint_id: str
    url: str
    secret_sealed: str
    event_types: tuple[str, ...]
    now: datetime


class DeleteEndpoint(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    endpoint_id: str
    now: datetime


Command = CreateEndpoint | DeleteEndpoint


def decide(command: Command, state: Endpoint | None, new_id: Callable[[], str]) -> list[Event]:
    match command:
        case CreateEndpoint():
            unknown = [t for t in command.event_types if t not in EVENT_TYPES]
            if unknown:
                raise Rejected("invalid_request", "invalid_value",
                               f"Unknown event type {unknown[0]!r}.", "event_types")
            if state is not None:
                return []
            return [EndpointCreated(
                id=new_id(), org_id=command.org_id, endpoint_id=command.endpoint_id,
                at=command.now, url=command.url, secret_sealed=command.secret_sealed,
                event_types=list(command.event_types),
            )]
        case DeleteEndpoint():
            if state is None or state.org_id != command.org_id or state.status == "deleted":
                raise Rejected("not_found", "webhook_endpoint_not_found",
                               f"No webhook endpoint {command.endpoint_id!r}.")
            return [EndpointDeleted(id=new_id(), org_id=state.org_id,
                                    endpoint_id=state.id, at=command.now)]
    raise TypeError(f"not a webhook command: {command!r}")  # pragma: no cover


class Delivery(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """One source event on its way to one endpoint."""

    webhook_id: str
    event_type: str
    session_id: str | None
    source_event_id: str


def after_attempt(
    endpoint: Endpoint, delivery: Delivery, attempt: int, status: int | None,
    error: str | None, retry_after: float | None, now: datetime, new_id: Callable[[], str],
    *, schedule: Sequence[float] = DEFAULT_SCHEDULE, scale: float = 1.0, jitter: float = 0.0,
    disable_after: int = DISABLE_AFTER_FAILURES,
) -> list[Event]:
    """The events one attempt leaves: the attempt itself and, maybe, a disabling.

    2xx → delivered. 410 → gone: the endpoint is disabled. Anything else → retrying at
    ``schedule[attempt] * scale`` (times ``1 + jitter``, ``jitter`` in [-0.1, 0.1]),
    no earlier than ``retry_after`` seconds, or ``failed`` past the schedule's end;
    ``disable_after`` deliveries failed in a row disable the endpoint.
    """
    if endpoint.status != "enabled":
        raise Rejected(CONFLICT, "webhook_endpoint_disabled",
                       f"{endpoint.id} is {endpoint.status}.")

    def attempted(outcome: Outcome, next_at: datetime | None = None) -> DeliveryAttempted:
        return DeliveryAttempted(
            id=new_id(), org_id=endpoint.org_id, endpoint_id=endpoint.id, at=now,
            webhook_id=delivery.webhook_id, event_type=delivery.event_type,
            session_id=delivery.session_id, source_event_id=delivery.source_event_id,
            attempt=attempt, status=status, error=error, next_attempt_at=next_at,
            outcome=outcome,
        )

    def disabled(reason: str) -> EndpointDisabled:
        return EndpointDisabled(id=new_id(), org_id=endpoint.org_id, endpoint_id=endpoint.id,
                                at=now, reason=reason)

    if status is not None and 200 <= status < 300:
        return [attempted("delivered")]
    if status == 410:
        return [attempted("gone"), disabled("gone")]
    if attempt < len(schedule):
        delay = schedule[attempt] * scale * (1.0 + max(-0.1, min(0.1, jitter)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return [attempted("retrying", now + timedelta(seconds=delay))]
    if endpoint.consecutive_failures + 1 >= disable_after:
        return [attempted("failed"), disabled("failing")]
    return [attempted("failed")]
