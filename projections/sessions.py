"""The Session read model: what ``GET /v1/sessions`` and admission read.

Folds session events with the domain's own ``evolve`` (one fold, not two), and
keeps the indexes the API needs: sessions per org newest first, the org's active
sessions (admission), and the version of each session and of each org's
creations (optimistic concurrency for the next decision).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from protoface.domain import session
from protoface.domain.events import Event
from protoface.domain.org import (
    ADMISSION_GRACE,
    SessionAdmitted,
    SessionsAdmitted,
    admitted_sessions,
)
from protoface.domain.session import Session, SessionCreated, SessionEvent
from protoface.projections.pagination import DEFAULT_LIMIT, Page, newest_first, paginate


@dataclass(frozen=True, slots=True)
class Query:
    org_id: str
    statuses: frozenset[str] | None = None
    avatar_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    starting_after: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass
class SessionsModel:
    sessions: dict[str, Session] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    by_org: dict[str, list[str]] = field(default_factory=dict)
    active_by_org: dict[str, set[str]] = field(default_factory=dict)
    # Admissions whose session has not appeared yet: org → {session id: admitted at}.
    admitted: dict[str, dict[str, datetime]] = field(default_factory=dict)
    admission_version: dict[str, int] = field(default_factory=dict)
    # Queued sessions no worker has claimed yet (capacity admission counts them).
    waiting: set[str] = field(default_factory=set)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return  # already applied: re-delivery after a reconnect is harmless
        self.last_seq = seq
        if isinstance(event, SessionAdmitted | SessionsAdmitted):
            for session_id in admitted_sessions(event):
                if session_id not in self.sessions:
                    self.admitted.setdefault(event.org_id, {})[session_id] = event.at
            self.admission_version[event.org_id] = seq
            return
        if not isinstance(event, SessionEvent):
            return
        before = self.sessions.get(event.session_id)
        after = session.evolve(before, event)
        if after is None:
            return
        self.sessions[event.session_id] = after
        self.versions[event.session_id] = seq
        if isinstance(event, SessionCreated):
            self.admitted.get(event.org_id, {}).pop(event.session_id, None)
            if before is None:
                bisect.insort(self.by_org.setdefault(event.org_id, []), event.session_id)
        if after.status == "queued":
            self.waiting.add(after.id)
        else:
            self.waiting.discard(after.id)
        active = self.active_by_org.setdefault(after.org_id, set())
        if after.terminal:
            active.discard(after.id)
        else:
            active.add(after.id)

    # ── Queries ─────────────────────────────────────────────────────────────────

    def get(self, org_id: str, session_id: str) -> Session | None:
        found = self.sessions.get(session_id)
        return found if found is not None and found.org_id == org_id else None

    def waiting_tiers(self) -> list[str]:
        """The tier of every session queued for a worker (capacity admission places them)."""
        return [self.sessions[i].quality for i in self.waiting]

    def active_count(self, org_id: str, now: datetime | None = None) -> int:
        """Non-terminal sessions, plus admissions still waiting for their session."""
        pending = self.admitted.get(org_id, {})
        if now is not None:
            waiting = sum(1 for at in pending.values() if now - at < ADMISSION_GRACE)
        else:
            waiting = len(pending)
        return len(self.active_by_org.get(org_id, ())) + waiting

    def page(self, query: Query) -> Page[Session]:
        """A page, newest first, and whether more match after it."""
        return paginate(self._newest_first(query), query.limit)

    def _newest_first(self, query: Query) -> Iterator[Session]:
        for session_id in newest_first(self.by_org.get(query.org_id, []), query.starting_after):
            found = self.sessions[session_id]
            if query.created_before is not None and found.created_at >= query.created_before:
                continue
            if query.created_after is not None and found.created_at < query.created_after:
                break  # ids are in creation order: everything further is older
            if query.statuses is not None and found.status not in query.statuses:
                continue
            if query.avatar_id is not None and found.avatar_id != query.avatar_id:
                continue
            yield found

    def export(self) -> dict[str, object]:
        """Everything the model holds, for rebuild-equals-live comparisons."""
        return {
            "sessions": dict(sorted(self.sessions.items())),
            "versions": dict(sorted(self.versions.items())),
            "by_org": {k: list(v) for k, v in sorted(self.by_org.items())},
            "active_by_org": {k: sorted(v) for k, v in sorted(self.active_by_org.items()) if v},
            "admitted": {k: dict(sorted(v.items())) for k, v in sorted(self.admitted.items()) if v},
            "admission_version": dict(sorted(self.admission_version.items())),
            "waiting": sorted(self.waiting),
            "last_seq": self.last_seq,
        }
