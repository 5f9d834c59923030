"""The webhook endpoints read model.

Folds ``webhook.*`` events with the domain's own ``webhook.evolve``: the API lists
endpoints from it, and the dispatcher's ledger holds one to know who wants what.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protoface.domain import webhook
from protoface.domain.events import Event
from protoface.domain.webhook import Endpoint, WebhookEvent


@dataclass
class WebhookEndpointsModel:
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    by_org: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if not isinstance(event, WebhookEvent):
            return
        before = self.endpoints.get(event.endpoint_id)
        after = webhook.evolve(before, event)
        if after is None:
            return
        self.endpoints[after.id] = after
        self.versions[after.id] = seq
        if before is None:
            self.by_org.setdefault(after.org_id, []).append(after.id)

    def get(self, org_id: str, endpoint_id: str) -> Endpoint | None:
        found = self.endpoints.get(endpoint_id)
        if found is None or found.org_id != org_id or found.status == "deleted":
            return None
        return found

    def of_org(self, org_id: str) -> list[Endpoint]:
        """The org's endpoints (not deleted), oldest first."""
        return [e for i in self.by_org.get(org_id, []) if (e := self.endpoints[i]).status
                != "deleted"]

    def export(self) -> dict[str, object]:
        return {
            "endpoints": dict(sorted(self.endpoints.items())),
            "versions": dict(sorted(self.versions.items())),
            "last_seq": self.last_seq,
        }
