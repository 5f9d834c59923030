"""The usage ledger and credits: one canonical usage record per session, and what
each org has left to spend (``GET /v1/usage``, ``GET /v1/billing/quota``, the
credit check on create, and the supervisor's ``credits_exhausted`` decision).

Session events are folded with the domain's own ``session.evolve`` (one fold, not
two) for the sessions still in play; once a session is terminal only its final
record is kept. The arithmetic is ``domain.billing``'s. Org events bring the plan
history and the grants, so this model alone answers every credit question.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from protoface.domain import billing, session
from protoface.domain.billing import Credits, Month, UsageRecord
from protoface.domain.events import Event
from protoface.domain.org import CreditsGranted, OrgCreated, PlanChanged
from protoface.domain.session import Quality, Session, SessionEvent


@dataclass(frozen=True, slots=True)
class Summary:
    """Usage attributed to a window: what ``GET /v1/usage`` reports."""

    billable_seconds: int
    by_quality: dict[Quality, int]
    sessions: int  # sessions with billable usage in the window


@dataclass
class UsageModel:
    # Session id → its usage record, for every session a worker has claimed.
    records: dict[str, UsageRecord] = field(default_factory=dict)
    # Org → (started_at, session id) of its records, sorted: windows are bisected.
    by_org: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    # Org → month → millicredits used (final and provisional records of that month).
    used: dict[str, dict[Month, int]] = field(default_factory=dict)
    # Org → month → millicredits granted in that month.
    granted: dict[str, dict[Month, int]] = field(default_factory=dict)
    # Org → its plan history (at, plan), creation first.
    plans: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    # Sessions not yet terminal, as the domain folds them (their record can still grow).
    open: dict[str, Session] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return  # already applied: re-delivery is harmless
        self.last_seq = seq
        match event:
            case SessionEvent():
                self._session(event)
            case OrgCreated(org_id=org_id, at=at, plan=plan):
                self.plans.setdefault(org_id, [(at, plan)])  # a replayed creation changes nothing
            case PlanChanged(org_id=org_id, at=at, plan=plan) if org_id in self.plans:
                self.plans[org_id].append((at, plan))
            case CreditsGranted(org_id=org_id, at=at, credits=credits):
                months = self.granted.setdefault(org_id, {})
                month = billing.month_of(at)
                months[month] = months.get(month, 0) + credits * billing.MILLI

    def _session(self, event: session.Event) -> None:
        known = self.records.get(event.session_id)
        if known is not None and known.final:
            return  # terminal absorbs every later event
        after = session.evolve(self.open.get(event.session_id), event)
        if after is None:
            return
        if after.terminal:
            self.open.pop(after.id, None)
        else:
            self.open[after.id] = after
        record = billing.usage_record(after)
        if record is not None and record != known:
            self._put(known, record)

    def _put(self, before: UsageRecord | None, record: UsageRecord) -> None:
        used = self.used.setdefault(record.org_id, {})
        if before is None:
            bisect.insort(self.by_org.setdefault(record.org_id, []),
                          (record.started_at, record.session_id))
        else:
            used[before.month] -= before.credits_milli
        used[record.month] = used.get(record.month, 0) + record.credits_milli
        self.records[record.session_id] = record

    # ── Queries ─────────────────────────────────────────────────────────────────

    def in_window(self, org_id: str, start: datetime, end: datetime) -> Iterator[UsageRecord]:
        """The org's records whose usage is attributed to ``[start, end)``, oldest first."""
        started = self.by_org.get(org_id, [])
        lo = bisect.bisect_left(started, (start, ""))
        hi = bisect.bisect_left(started, (end, ""))
        for _, session_id in started[lo:hi]:
            yield self.records[session_id]

    def summary(self, org_id: str, start: datetime, end: datetime) -> Summary:
        seconds, count = 0, 0
        by_quality: dict[Quality, int] = {}
        for record in self.in_window(org_id, start, end):
            if record.billable_seconds > 0:
                count += 1
                seconds += record.billable_seconds
                by_quality[record.quality] = by_quality.get(record.quality, 0) + (
                    record.billable_seconds)
        return Summary(seconds, by_quality, count)

    def credits(self, org_id: str, month: Month) -> Credits:
        return billing.credits_in(month, self.plans.get(org_id, []),
                                  self.granted.get(org_id, {}), self.used.get(org_id, {}))

    def running(self) -> Iterator[UsageRecord]:
        """Records of sessions still in play (claimed, not terminal)."""
        for session_id in self.open:
            record = self.records.get(session_id)
            if record is not None:
                yield record

    def export(self) -> dict[str, object]:
        """Everything the model holds, for rebuild-equals-live comparisons."""
        return {
            "records": dict(sorted(self.records.items())),
            "by_org": {k: list(v) for k, v in sorted(self.by_org.items())},
            "used": {k: dict(sorted(v.items())) for k, v in sorted(self.used.items())},
            "granted": {k: dict(sorted(v.items())) for k, v in sorted(self.granted.items())},
            "plans": {k: list(v) for k, v in sorted(self.plans.items())},
            "open": dict(sorted(self.open.items())),
            "last_seq": self.last_seq,
        }
