"""Billing arithmetic: a session's canonical usage record, and an org's credits per month.

Pure: no I/O, no clock (``now`` and every amount come in as arguments).

* **Usage.** 1 credit = 1 session minute, rounded up, times the tier's multiplier
  (``lite`` 0.5, ``standard`` 1, ``pro`` 2; ``mock`` bills as ``standard``). A
  session's record is *provisional* while it runs (its billable seconds lag the
  worker by at most one heartbeat) and *final* once it is terminal.
* **Attribution.** A session's usage belongs to the calendar month (UTC) of its
  ``started_at`` — the claim, which precedes every billable second and is set on
  every session that can have usage (``first_frame_at`` can be missing on a
  session that ended before its first-frame report landed). A session is never
  split across periods: one session, one record, one period.
* **Credits.** Each calendar month an org gets its plan's included credits; grants
  come on top and do not expire: usage beyond the month's included credits draws
  on them, and what is left carries into the next month. An overdraft (possible
  by at most a minute per concurrent session, see :func:`out_of_credit`) is not
  carried: each month starts from its included credits.

Amounts are integer *millicredits* so every sum is exact (a lite minute is 500).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from protoface.domain.errors import QUOTA, Rejected
from protoface.domain.plans import PLANS
from protoface.domain.session import Quality, Session

MILLI: Final = 1_000
# Millicredits per session minute, by the tier a session bills as.
BILLS_AS: Final[dict[Quality, Quality]] = {
    "mock": "standard", "lite": "lite", "standard": "standard", "pro": "pro",
}
MINUTE_COST: Final[dict[Quality, int]] = {"lite": 500, "standard": 1_000, "pro": 2_000}
CHEAPEST_MINUTE: Final = min(MINUTE_COST.values())

Month = str  # "YYYY-MM", UTC; sorts chronologically as a string


# ── Usage of one session ────────────────────────────────────────────────────────


def minutes(billable_seconds: int) -> int:
    """Session minutes, rounded up: 1 s → 1, 60 s → 1, 61 s → 2."""
    return -(-max(billable_seconds, 0) // 60)


def minute_cost(quality: Quality) -> int:
    """Millicredits one minute of ``quality`` costs."""
    return MINUTE_COST[BILLS_AS[quality]]


def credits_for(quality: Quality, billable_seconds: int) -> int:
    """Millicredits a session of ``quality`` costs for ``billable_seconds``."""
    return minutes(billable_seconds) * minute_cost(quality)


class UsageRecord(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """The canonical usage of one session: what it is billed."""

    session_id: str
    org_id: str
    avatar_id: str
    quality: Quality
    started_at: datetime  # attributes the usage to a period
    billable_seconds: int
    minutes: int
    credits_milli: int
    final: bool  # False while the session runs: the figures may still grow

    @property
    def month(self) -> Month:
        return month_of(self.started_at)


def usage_record(state: Session) -> UsageRecord | None:
    """The session's usage record; ``None`` before a worker claimed it (nothing is billable)."""
    if state.started_at is None:
        return None
    seconds = state.billable_seconds
    return UsageRecord(
        session_id=state.id, org_id=state.org_id, avatar_id=state.avatar_id,
        quality=state.quality, started_at=state.started_at, billable_seconds=seconds,
        minutes=minutes(seconds), credits_milli=credits_for(state.quality, seconds),
        final=state.terminal,
    )


# ── Calendar months (UTC) ───────────────────────────────────────────────────────


def month_of(at: datetime) -> Month:
    # Formatted by hand rather than ``strftime`` (a third of the cost; every create asks).
    utc = at.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def month_start(month: Month) -> datetime:
    return datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=UTC)


def next_month(month: Month) -> Month:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def previous_month(month: Month) -> Month:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - (mon == 1):04d}-{(mon - 2) % 12 + 1:02d}"


def month_bounds(month: Month) -> tuple[datetime, datetime]:
    """``[start, end)`` of ``month``: the end is exclusive (the next month's start)."""
    return month_start(month), month_start(next_month(month))


# ── An org's credits in one month ───────────────────────────────────────────────


class Credits(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """An org's credits for one calendar month, in millicredits."""

    month: Month
    plan: str | None
    included: int  # the plan's included credits for the month
    granted: int  # grants available: carried in from earlier months plus this month's
    used: int  # final and provisional usage attributed to the month

    @property
    def balance(self) -> int:
        return self.included + self.granted - self.used

    @property
    def can_start_session(self) -> bool:
        """Whether a minute of the cheapest tier is covered (pro needs more)."""
        return self.balance >= CHEAPEST_MINUTE


def plan_in(month: Month, plans: Sequence[tuple[datetime, str]]) -> str | None:
    """The plan in effect at the end of ``month`` (for the current month: now).

    ``plans`` are the org's plan changes in log order, its creation first; ``None``
    for a month that ended before the org existed.
    """
    end = month_start(next_month(month))
    current: str | None = None
    for at, plan in plans:
        if at < end:
            current = plan
    return current


def included_in(month: Month, plans: Sequence[tuple[datetime, str]]) -> int:
    plan = PLANS.get(plan_in(month, plans) or "")
    return plan.included_credits * MILLI if plan is not None else 0


def credits_in(
    month: Month, plans: Sequence[tuple[datetime, str]], granted: Mapping[Month, int],
    used: Mapping[Month, int],
) -> Credits:
    """The org's credits for ``month`` from its plan history, grants and usage by month.

    Earlier months are folded oldest first: each month's usage beyond its included
    credits draws down the grants available then; what is left carries over.
    """
    carried = 0
    for earlier in sorted(set(granted) | set(used)):
        if earlier >= month:
            break
        overage = max(0, used.get(earlier, 0) - included_in(earlier, plans))
        carried = max(0, carried + granted.get(earlier, 0) - overage)
    return Credits(
        month=month, plan=plan_in(month, plans), included=included_in(month, plans),
        granted=carried + granted.get(month, 0), used=used.get(month, 0),
    )


# ── Decisions ───────────────────────────────────────────────────────────────────


def require_credit(credits: Credits, quality: Quality) -> None:
    """Refuse a new session when the balance cannot pay its first minute."""
    cost = minute_cost(quality)
    if credits.balance < cost:
        raise Rejected(
            QUOTA, "insufficient_credit_balance",
            f"Your org has {display(credits.balance)} credit(s) left this month; a {quality} "
            f"session needs {display(cost)} per minute. Add credits or upgrade your plan.",
        )


def out_of_credit(credits: Credits, record: UsageRecord, margin_seconds: float) -> bool:
    """Whether the running session ``record`` must end now for lack of credit.

    ``credits`` is the month the session is attributed to, counting this session's
    usage so far. A minute is charged whole as soon as it begins, so the session
    may use the rest of the minute it has paid for: it ends when the org cannot pay
    its next minute and less than ``margin_seconds`` (the reporting lag plus the
    time to drain) of the paid one remain — or at once if the org is overdrawn
    (concurrent sessions each started a minute the balance could not cover).
    """
    if record.final:
        return False
    if credits.balance < 0:
        return True
    if credits.balance >= minute_cost(record.quality):
        return False
    return record.minutes * 60 - record.billable_seconds <= margin_seconds


def display(milli: int) -> int | float:
    """Millicredits as the credits a person reads: ``1500`` → ``1.5``, ``2000`` → ``2``."""
    return milli // MILLI if milli % MILLI == 0 else milli / MILLI
