"""What the dispatcher reads: endpoints and the last attempt of each delivery.

What has been attempted comes from the log, not from memory: the ledger follows
``events.webhook.>`` only (endpoints and attempts; never the rest of the log), so a
restarted dispatcher resumes every unsettled delivery at its recorded time without
folding the log. Deliveries whose source event is older than the horizon (3 days) are
dropped and forgotten: that is what keeps the ledger's memory bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protoface.domain import ids
from protoface.domain.events import Event
from protoface.domain.webhook import DeliveryAttempted, Endpoint, EndpointCreated
from protoface.projections.webhooks.endpoints import WebhookEndpointsModel

# Deliveries whose source event is older than this are dropped (and forgotten).
DEFAULT_HORIZON = 3 * 24 * 3600.0
# A writer's clock may run ahead of ours by up to this: anything the ledger forgot
# (by the log's times) is also expired by ours, so it is never delivered again.
CLOCK_SKEW = timedelta(hours=1)
PRUNE_EVERY = 1000  # attempts folded between two prunes


@dataclass
class DeliveryLedger:
    """Folded from ``webhook.*`` events only: the endpoints, the sequence each was
    created at (an endpoint gets the events stored after it), and the last attempt of
    each (endpoint, webhook id). Attempts whose source event lies ``horizon`` before the
    newest attempt folded are forgotten: by the log's own times, so every fold of the
    same log forgets the same."""

    horizon: timedelta = timedelta(seconds=DEFAULT_HORIZON)
    endpoints: WebhookEndpointsModel = field(default_factory=WebhookEndpointsModel)
    created: dict[str, int] = field(default_factory=dict)
    attempts: dict[tuple[str, str], DeliveryAttempted] = field(default_factory=dict)
    newest: datetime | None = None
    last_seq: int = 0
    _folded: int = 0  # attempts since the last prune

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        self.endpoints.apply(seq, event)
        if isinstance(event, EndpointCreated):
            self.created.setdefault(event.endpoint_id, seq)
        elif isinstance(event, DeliveryAttempted):
            self.attempts[(event.endpoint_id, event.webhook_id)] = event
            self.newest = event.at if self.newest is None else max(self.newest, event.at)
            self._folded += 1
            if self._folded >= PRUNE_EVERY:
                self.prune()

    def prune(self) -> None:
        self._folded = 0
        if self.newest is None:
            return
        cutoff = self.newest - self.horizon
        self.attempts = {key: attempted for key, attempted in self.attempts.items()
                         if not _born_before(key[1], cutoff)}

    def expired(self, webhook_id: str, now: datetime) -> bool:
        """Past the horizon: not delivered any more (the ledger may have forgotten it)."""
        return _born_before(webhook_id, now - self.horizon + CLOCK_SKEW)

    def wants(self, endpoint: Endpoint, event_type: str, seq: int) -> bool:
        """Whether ``endpoint`` gets the ``event_type`` event stored at ``seq``."""
        return endpoint.wants(event_type) and self.created.get(endpoint.id, seq) < seq

    def wanting(self, org_id: str, event_type: str, seq: int) -> list[Endpoint]:
        return [e for e in self.endpoints.of_org(org_id) if self.wants(e, event_type, seq)]

    def last_attempt(self, endpoint_id: str, webhook_id: str) -> DeliveryAttempted | None:
        return self.attempts.get((endpoint_id, webhook_id))


def _born_before(webhook_id: str, cutoff: datetime) -> bool:
    born = ids.time_of(webhook_id)  # the source event's id time (webhook_id keeps its ULID)
    return born is not None and born < cutoff
