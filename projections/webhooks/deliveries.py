"""Recent webhook deliveries with their attempts, for the operator dashboard.

Folded from ``webhook.delivery_attempted`` events (the webhook follower's subject);
only the newest ``keep`` deliveries are held, so memory stays bounded however long
the log is. A delivery is one (endpoint, webhook id): every retry is one attempt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from protoface.domain.events import Event
from protoface.domain.webhook import DeliveryAttempted

KEEP = 50


@dataclass
class RecentDeliveries:
    keep: int = KEEP
    # (endpoint id, webhook id) → its attempts, oldest first; least recently attempted first.
    deliveries: OrderedDict[tuple[str, str], list[DeliveryAttempted]] = field(
        default_factory=OrderedDict)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if not isinstance(event, DeliveryAttempted):
            return
        key = (event.endpoint_id, event.webhook_id)
        attempts = self.deliveries.pop(key, [])
        attempts.append(event)
        self.deliveries[key] = attempts
        while len(self.deliveries) > self.keep:
            self.deliveries.popitem(last=False)

    def newest(self, limit: int) -> list[list[DeliveryAttempted]]:
        """The most recently attempted deliveries first, each with all its attempts."""
        return list(reversed(self.deliveries.values()))[:limit]
