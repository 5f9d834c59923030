"""The billing plan catalog (``GET /v1/billing/plans``) and the limits it sets."""

from __future__ import annotations

import msgspec


class Plan(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    key: str
    name: str
    monthly_price_cents: int
    included_credits: int
    extra_credit_unit_micros: int | None
    max_concurrency: int
    custom_avatar_slots: int
    extra_avatar_slot_cents: int | None
    session_time_limit_seconds: int
    # Not part of the public PlanView: internal plans are hidden from the catalog,
    # and the create rate limit (per API key, per minute; None = unlimited).
    public: bool = True
    create_rate_per_minute: int | None = 10


PLANS: dict[str, Plan] = {
    p.key: p
    for p in (
        Plan(
            key="free", name="Free", monthly_price_cents=0, included_credits=20,
            extra_credit_unit_micros=None, max_concurrency=1, custom_avatar_slots=1,
            extra_avatar_slot_cents=None, session_time_limit_seconds=120,
        ),
        Plan(
            key="starter", name="Starter", monthly_price_cents=2_900, included_credits=600,
            extra_credit_unit_micros=60_000, max_concurrency=2, custom_avatar_slots=3,
            extra_avatar_slot_cents=500, session_time_limit_seconds=600,
        ),
        Plan(
            key="launch", name="Launch", monthly_price_cents=9_900, included_credits=2_500,
            extra_credit_unit_micros=50_000, max_concurrency=10, custom_avatar_slots=10,
            extra_avatar_slot_cents=400, session_time_limit_seconds=1_200,
        ),
        Plan(
            key="scale", name="Scale", monthly_price_cents=49_900, included_credits=15_000,
            extra_credit_unit_micros=40_000, max_concurrency=50, custom_avatar_slots=50,
            extra_avatar_slot_cents=300, session_time_limit_seconds=3_600,
        ),
        # For operators, load tests and benchmarks: never listed, never sold.
        Plan(
            key="internal", name="Internal (unlimited)", monthly_price_cents=0,
            included_credits=10**9, extra_credit_unit_micros=None, max_concurrency=100_000,
            custom_avatar_slots=1_000, extra_avatar_slot_cents=None,
            session_time_limit_seconds=3_600, public=False, create_rate_per_minute=None,
        ),
    )
}

PUBLIC_PLANS: tuple[Plan, ...] = tuple(p for p in PLANS.values() if p.public)
