"""The dispatcher's ledger, folded from ``webhook.*`` events: an endpoint gets only the
events stored after its creation, the last attempt of each delivery is kept, and
deliveries past the horizon are forgotten (by the log's times) and no longer delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protoface.domain import ids, webhook
from protoface.domain.webhook import DeliveryAttempted, EndpointCreated, EndpointDisabled
from protoface.projections.webhooks.ledger import PRUNE_EVERY, DeliveryLedger

AT = datetime(2026, 3, 1, tzinfo=UTC)


def created(endpoint_id: str, *event_types: str) -> EndpointCreated:
    return EndpointCreated(id=ids.new_event_id(), org_id="org_1", endpoint_id=endpoint_id, at=AT,
                           url="https://example.com/hook", secret_sealed="sealed",
                           event_types=list(event_types))


def attempted(webhook_id: str, at: datetime, outcome: str = "delivered",
              attempt: int = 1) -> DeliveryAttempted:
    return DeliveryAttempted(id=ids.new_event_id(), org_id="org_1", endpoint_id="we_1", at=at,
                             webhook_id=webhook_id, event_type="session.ended",
                             attempt=attempt, outcome=outcome)  # type: ignore[arg-type]


def source(at: datetime) -> str:
    """The webhook id of a source event made at ``at``."""
    return webhook.webhook_id(ids.new_id(ids.EVENT, at))


def test_given_an_endpoint_created_at_a_sequence_then_it_wants_only_later_events() -> None:
    ledger = DeliveryLedger()
    ledger.apply(10, created("we_1", "session.ended"))
    ledger.apply(11, created("we_2"))
    assert [e.id for e in ledger.wanting("org_1", "session.ended", 12)] == ["we_1", "we_2"]
    assert ledger.wanting("org_1", "session.ended", 10) == []
    assert [e.id for e in ledger.wanting("org_1", "session.queued", 12)] == ["we_2"]
    ledger.apply(12, EndpointDisabled(id="evt_d", org_id="org_1", endpoint_id="we_2", at=AT))
    assert [e.id for e in ledger.wanting("org_1", "session.queued", 13)] == []


def test_given_several_attempts_then_the_last_one_is_kept() -> None:
    ledger = DeliveryLedger()
    ledger.apply(1, created("we_1"))
    wid = source(AT)
    ledger.apply(2, attempted(wid, AT, "retrying", 1))
    ledger.apply(3, attempted(wid, AT, "delivered", 2))
    ledger.apply(3, attempted(wid, AT, "retrying", 3))  # a re-delivered sequence: ignored
    last = ledger.last_attempt("we_1", wid)
    assert last is not None and (last.attempt, last.outcome) == (2, "delivered")


def test_given_attempts_past_the_horizon_when_pruned_then_they_are_forgotten_and_expired() -> None:
    ledger = DeliveryLedger(horizon=timedelta(days=3))
    old, recent = source(AT), source(AT + timedelta(days=2))
    ledger.apply(1, attempted(old, AT))
    ledger.apply(2, attempted(recent, AT + timedelta(days=2)))
    for seq in range(3, 3 + PRUNE_EVERY):  # the newest attempt, 4 days after the first
        ledger.apply(seq, attempted(source(AT + timedelta(days=4)), AT + timedelta(days=4)))
    assert ledger.last_attempt("we_1", old) is None
    assert ledger.last_attempt("we_1", recent) is not None
    # Whatever was forgotten is expired for the dispatcher too, so it is never sent again.
    now = AT + timedelta(days=4)
    assert ledger.expired(old, now) and not ledger.expired(recent, now)
    assert not ledger.expired("msg_not_a_ulid", now)
