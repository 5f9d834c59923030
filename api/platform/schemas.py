"""Wire types of the platform's public operations: plans and status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from protoface.domain.plans import Plan


class PlanView(msgspec.Struct, kw_only=True):
    key: str
    name: str
    monthly_price_cents: int
    included_credits: int
    extra_credit_unit_micros: int | None
    max_concurrency: int
    custom_avatar_slots: int
    extra_avatar_slot_cents: int | None
    session_time_limit_seconds: int


Health = Literal["operational", "degraded", "outage"]


class StatusComponent(msgspec.Struct):
    name: str
    status: Health


class StatusResponse(msgspec.Struct):
    status: Health
    components: list[StatusComponent]
    updated_at: datetime


def plan_view(plan: Plan) -> PlanView:
    return PlanView(
        key=plan.key, name=plan.name, monthly_price_cents=plan.monthly_price_cents,
        included_credits=plan.included_credits,
        extra_credit_unit_micros=plan.extra_credit_unit_micros,
        max_concurrency=plan.max_concurrency, custom_avatar_slots=plan.custom_avatar_slots,
        extra_avatar_slot_cents=plan.extra_avatar_slot_cents,
        session_time_limit_seconds=plan.session_time_limit_seconds,
    )
