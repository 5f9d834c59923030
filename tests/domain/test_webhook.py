"""The webhook endpoint aggregate: retries on a schedule, 410 and repeated failure disable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from protoface.domain import webhook
from protoface.domain.errors import Rejected
from protoface.domain.webhook import (
    CreateEndpoint,
    DeleteEndpoint,
    Delivery,
    DeliveryAttempted,
    Endpoint,
    EndpointDisabled,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SEC = timedelta(seconds=1)
_n = count()


def new_id() -> str:
    return f"evt_{next(_n)}"


def endpoint(**changes: object) -> Endpoint:
    events = webhook.decide(CreateEndpoint(
        org_id="org_a", endpoint_id="we_1", url="https://hooks.example.com/x",
        secret_sealed="v1.k.sealed", event_types=(), now=NOW), None, new_id)
    state = webhook.evolve(None, events[0])
    assert state is not None
    return state.__class__(**{**{f: getattr(state, f) for f in state.__struct_fields__},
                              **changes})


DELIVERY = Delivery(webhook_id=webhook.webhook_id("evt_01ABC"), event_type="session.queued",
                    session_id="sess_1", source_event_id="evt_01ABC")


def attempt(state: Endpoint, n: int, status: int | None, retry_after: float | None = None,
            **kw: object) -> list[webhook.Event]:
    return webhook.after_attempt(state, DELIVERY, n, status, None, retry_after, NOW, new_id,
                                 **kw)  # type: ignore[arg-type]


def test_the_webhook_id_derives_from_the_source_event_so_retries_keep_it() -> None:
    assert webhook.webhook_id("evt_01ABC") == webhook.webhook_id("evt_01ABC") == "msg_01ABC"


def test_a_2xx_is_delivered_and_resets_the_failure_count() -> None:
    (event,) = attempt(endpoint(consecutive_failures=3), 1, 204)
    assert isinstance(event, DeliveryAttempted) and event.outcome == "delivered"
    state = webhook.evolve(endpoint(consecutive_failures=3), event)
    assert state is not None and state.consecutive_failures == 0


def test_a_failure_retries_on_the_schedule_then_gives_up() -> None:
    schedule = (0.0, 5.0, 300.0, 1800.0, 7200.0)
    nexts = []
    for n in range(1, 5):
        (event,) = attempt(endpoint(), n, 500, schedule=schedule)
        assert isinstance(event, DeliveryAttempted) and event.outcome == "retrying"
        assert event.next_attempt_at is not None
        nexts.append((event.next_attempt_at - NOW).total_seconds())
    assert nexts == [5.0, 300.0, 1800.0, 7200.0]
    (last,) = attempt(endpoint(), 5, 500, schedule=schedule)
    assert isinstance(last, DeliveryAttempted) and last.outcome == "failed"
    assert last.next_attempt_at is None


def test_jitter_and_scale_move_the_next_attempt_within_ten_percent() -> None:
    (event,) = attempt(endpoint(), 2, 503, jitter=0.5, scale=0.01)
    assert isinstance(event, DeliveryAttempted) and event.next_attempt_at is not None
    assert event.next_attempt_at - NOW == timedelta(seconds=300 * 0.01 * 1.1)


def test_retry_after_pushes_the_next_attempt_later_never_earlier() -> None:
    (later,) = attempt(endpoint(), 1, 429, retry_after=60)
    assert isinstance(later, DeliveryAttempted) and later.next_attempt_at == NOW + 60 * SEC
    (same,) = attempt(endpoint(), 1, 429, retry_after=1)
    assert isinstance(same, DeliveryAttempted) and same.next_attempt_at == NOW + 5 * SEC


def test_410_gone_disables_the_endpoint_without_retrying() -> None:
    gone, disabled = attempt(endpoint(), 1, 410)
    assert isinstance(gone, DeliveryAttempted) and gone.outcome == "gone"
    assert gone.next_attempt_at is None
    assert isinstance(disabled, EndpointDisabled) and disabled.reason == "gone"
    state = webhook.evolve(endpoint(), disabled)
    assert state is not None and state.status == "disabled" and not state.wants("session.queued")


def test_repeated_failure_disables_the_endpoint() -> None:
    state = endpoint(consecutive_failures=webhook.DISABLE_AFTER_FAILURES - 2)
    (failed,) = attempt(state, 5, None)
    state2 = webhook.evolve(state, failed)
    assert state2 is not None and state2.status == "enabled"
    _, disabled = attempt(state2, 5, 500)
    assert isinstance(disabled, EndpointDisabled) and disabled.reason == "failing"


def test_an_endpoint_receives_only_the_types_it_asked_for() -> None:
    state = endpoint(event_types=("session.ended",))
    assert state.wants("session.ended") and not state.wants("session.queued")
    assert endpoint().wants("session.queued")


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(Rejected) as refused:
        webhook.decide(CreateEndpoint(
            org_id="org_a", endpoint_id="we_2", url="https://x.example", secret_sealed="s",
            event_types=("session.exploded",), now=NOW), None, new_id)
    assert refused.value.param == "event_types"


def test_only_the_owning_org_can_delete_an_endpoint_and_only_once() -> None:
    with pytest.raises(Rejected):
        webhook.decide(DeleteEndpoint(org_id="org_b", endpoint_id="we_1", now=NOW),
                       endpoint(), new_id)
    (deleted,) = webhook.decide(DeleteEndpoint(org_id="org_a", endpoint_id="we_1", now=NOW),
                                endpoint(), new_id)
    gone = webhook.evolve(endpoint(), deleted)
    with pytest.raises(Rejected):
        webhook.decide(DeleteEndpoint(org_id="org_a", endpoint_id="we_1", now=NOW), gone, new_id)
