"""The Org directory: orgs, their plans, and API keys by hash (authentication reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from protoface.domain import org
from protoface.domain.events import Event
from protoface.domain.org import Org, OrgEvent


class Principal:
    """Who is calling: the org behind an API key.

    A plain class on purpose: Litestar re-validates injected dataclasses on every
    request, and this one is already trusted.
    """

    __slots__ = ("key_id", "org")

    def __init__(self, org: Org, key_id: str) -> None:
        self.org = org
        self.key_id = key_id


@dataclass
class OrgsModel:
    orgs: dict[str, Org] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # hash → (org, key id)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if not isinstance(event, OrgEvent):
            return
        after = org.evolve(self.orgs.get(event.org_id), event)
        if after is None:
            return
        self.orgs[after.id] = after
        self.versions[after.id] = seq
        self.by_name.setdefault(after.name, after.id)
        for key in after.keys:
            if key.revoked:
                self.keys.pop(key.key_hash, None)
            else:
                self.keys[key.key_hash] = (after.id, key.key_id)

    def authenticate(self, key_hash: str) -> Principal | None:
        found = self.keys.get(key_hash)
        if found is None:
            return None
        return Principal(self.orgs[found[0]], found[1])

    def export(self) -> dict[str, object]:
        return {
            "orgs": dict(sorted(self.orgs.items())),
            "versions": dict(sorted(self.versions.items())),
            "keys": dict(sorted(self.keys.items())),
            "last_seq": self.last_seq,
        }
