"""Recent webhook deliveries: attempts grouped per (endpoint, webhook), most recently
attempted first, and only the newest ``keep`` held."""

from __future__ import annotations

from datetime import UTC, datetime

from protoface.domain.webhook import DeliveryAttempted, EndpointDisabled
from protoface.projections.webhooks.deliveries import RecentDeliveries

AT = datetime(2026, 3, 1, tzinfo=UTC)


def attempted(webhook_id: str, attempt: int, outcome: str = "delivered") -> DeliveryAttempted:
    return DeliveryAttempted(id=f"ev_{webhook_id}_{attempt}", org_id="org_1", endpoint_id="we_1",
                             at=AT, webhook_id=webhook_id, event_type="session.ended",
                             attempt=attempt, outcome=outcome)  # type: ignore[arg-type]


def test_attempts_of_one_delivery_are_grouped_and_the_latest_comes_first() -> None:
    model = RecentDeliveries()
    model.apply(1, attempted("msg_a", 1, "retrying"))
    model.apply(2, attempted("msg_b", 1))
    model.apply(3, attempted("msg_a", 2))
    model.apply(3, attempted("msg_a", 3))  # a re-delivered sequence changes nothing
    model.apply(4, EndpointDisabled(id="ev_x", org_id="org_1", endpoint_id="we_1", at=AT))
    newest = model.newest(10)
    assert [[a.attempt for a in d] for d in newest] == [[1, 2], [1]]
    assert newest[0][0].webhook_id == "msg_a" and model.last_seq == 4


def test_only_the_newest_deliveries_are_kept() -> None:
    model = RecentDeliveries(keep=3)
    for seq in range(1, 8):
        model.apply(seq, attempted(f"msg_{seq}", 1))
    assert [d[0].webhook_id for d in model.newest(10)] == ["msg_7", "msg_6", "msg_5"]
    assert len(model.newest(2)) == 2
