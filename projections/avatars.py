"""The Avatar read model: what ``/v1/avatars``, session creation and slot admission read.

Folds ``avatar.*`` events with the domain's own ``evolve``. Deleted avatars stay in
the model (so a late build result or a second delete is recognised) but leave
every listing and stop counting against the org's slots.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from protoface.domain import avatar
from protoface.domain.avatar import STOCK_AVATARS, Avatar, AvatarCreated, AvatarEvent, StockAvatar
from protoface.domain.events import Event
from protoface.projections.pagination import DEFAULT_LIMIT, Page, newest_first, paginate

Scope = Literal["all", "platform", "org"]
Listed = Avatar | StockAvatar


@dataclass(frozen=True, slots=True)
class Query:
    org_id: str
    scope: Scope = "all"
    q: str | None = None  # case-insensitive substring of the name or the id
    starting_after: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass
class AvatarsModel:
    avatars: dict[str, Avatar] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    by_org: dict[str, list[str]] = field(default_factory=dict)  # ids in creation order
    # The org's last avatar.created (the condition of its next upload) and its live count.
    creation_version: dict[str, int] = field(default_factory=dict)
    live_by_org: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if not isinstance(event, AvatarEvent):
            return
        before = self.avatars.get(event.avatar_id)
        after = avatar.evolve(before, event)
        if after is None:
            return
        self.versions[after.id] = seq  # the aggregate's version, even for a no-op event
        if after == before:
            return
        self.avatars[after.id] = after
        if isinstance(event, AvatarCreated):
            self.creation_version[event.org_id] = seq
            bisect.insort(self.by_org.setdefault(after.org_id, []), after.id)
            self.live_by_org[after.org_id] = self.live_by_org.get(after.org_id, 0) + 1
        elif after.status == "deleted":
            self.live_by_org[after.org_id] -= 1

    # ── Queries ─────────────────────────────────────────────────────────────────

    def get(self, org_id: str, avatar_id: str) -> Avatar | None:
        """The org's own avatar (not deleted); another org's is None, like a missing one."""
        found = self.avatars.get(avatar_id)
        if found is None or found.org_id != org_id or found.status == "deleted":
            return None
        return found

    def custom_count(self, org_id: str) -> int:
        return self.live_by_org.get(org_id, 0)

    def page(self, query: Query) -> Page[Listed]:
        """The org's avatars newest first, then the stock catalog; and whether more follow."""
        return paginate(self._ordered(query), query.limit)

    def _ordered(self, query: Query) -> Iterator[Listed]:
        needle = (query.q or "").lower()

        def matches(item: Listed) -> bool:
            return not needle or needle in item.name.lower() or needle in item.id.lower()

        stock = list(STOCK_AVATARS.values()) if query.scope != "org" else []
        cursor = query.starting_after
        if cursor in STOCK_AVATARS:  # past every custom avatar, into the catalog
            ids = [s.id for s in stock]
            stock = stock[ids.index(cursor) + 1:] if cursor in ids else []
        elif query.scope != "platform":
            yield from (a for a in self._custom_newest_first(query.org_id, cursor) if matches(a))
        yield from (s for s in stock if matches(s))

    def _custom_newest_first(self, org_id: str, cursor: str | None) -> Iterator[Avatar]:
        for avatar_id in newest_first(self.by_org.get(org_id, []), cursor):
            found = self.avatars[avatar_id]
            if found.status != "deleted":
                yield found

    def export(self) -> dict[str, object]:
        """Everything the model holds, for rebuild-equals-live comparisons."""
        return {
            "avatars": dict(sorted(self.avatars.items())),
            "versions": dict(sorted(self.versions.items())),
            "by_org": {k: list(v) for k, v in sorted(self.by_org.items())},
            "creation_version": dict(sorted(self.creation_version.items())),
            "live_by_org": dict(sorted(self.live_by_org.items())),
            "last_seq": self.last_seq,
        }
