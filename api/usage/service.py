"""``GET /v1/usage`` and ``GET /v1/billing/quota``: the window a request asks for, and the
bodies they answer with (``UsageSummary`` field for field as ``seed/openapi.json``).

A window is ``period=current_month|previous_month`` (calendar months, UTC) *or* an
explicit ``period_start`` (inclusive) + ``period_end`` (exclusive) pair; with neither,
the current month. Usage is attributed by each session's ``started_at`` (see
``domain.billing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import msgspec

from protoface.api.errors import invalid
from protoface.api.http import query_datetime
from protoface.domain import billing
from protoface.domain.billing import Credits
from protoface.domain.session import Quality
from protoface.projections.usage import Summary

PERIODS = ("current_month", "previous_month")


class UsageSummaryView(msgspec.Struct, kw_only=True):
    period_start: datetime
    period_end: datetime
    billable_seconds: int
    sessions: int
    by_quality: dict[Quality, int]


class QuotaView(msgspec.Struct, kw_only=True):
    """An extension beyond the OpenAPI document (documented in the README)."""

    object: Literal["billing.quota"] = "billing.quota"
    plan: str | None
    included_credits: int | float
    granted_credits: int | float
    used_credits: int | float
    balance_credits: int | float
    period_start: datetime
    period_end: datetime
    can_start_session: bool


def window(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` from the query, or a 400 naming the offending parameter."""
    period = params.get("period")
    start_raw, end_raw = params.get("period_start"), params.get("period_end")
    if period is not None:
        if start_raw is not None or end_raw is not None:
            raise invalid("period_conflict", "Pass either period or period_start + period_end, "
                          "not both.", "period")
        if period not in PERIODS:
            raise invalid("invalid_value", "period must be current_month or previous_month.",
                          "period")
        month = billing.month_of(now)
        return billing.month_bounds(month if period == "current_month"
                                    else billing.previous_month(month))
    if start_raw is None and end_raw is None:
        return billing.month_bounds(billing.month_of(now))
    if end_raw is None:
        raise invalid("missing_field", "period_start must be paired with period_end.",
                      "period_end")
    if start_raw is None:
        raise invalid("missing_field", "period_end must be paired with period_start.",
                      "period_start")
    start = query_datetime(start_raw, "period_start")
    end = query_datetime(end_raw, "period_end")
    assert start is not None and end is not None
    if end <= start:
        raise invalid("invalid_value", "period_end must be after period_start.", "period_end")
    return start.astimezone(UTC), end.astimezone(UTC)


def summary_view(start: datetime, end: datetime, summary: Summary) -> UsageSummaryView:
    return UsageSummaryView(
        period_start=start, period_end=end, billable_seconds=summary.billable_seconds,
        sessions=summary.sessions, by_quality=dict(sorted(summary.by_quality.items())),
    )


def quota_view(credits: Credits) -> QuotaView:
    start, end = billing.month_bounds(credits.month)
    return QuotaView(
        plan=credits.plan, included_credits=billing.display(credits.included),
        granted_credits=billing.display(credits.granted),
        used_credits=billing.display(credits.used),
        balance_credits=billing.display(credits.balance),
        period_start=start, period_end=end, can_start_session=credits.can_start_session,
    )
