"""Billing arithmetic: minutes rounded up, tier multipliers, provisional and final records,
an org's credits per calendar month (plan, grants carried over, usage), and the two
decisions taken on them: refusing a create, ending a running session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoface.domain import billing as b
from protoface.domain import org as o
from protoface.domain import session as s
from protoface.domain.errors import QUOTA, Rejected
from protoface.domain.plans import PLANS
from tests.domain import support
from tests.domain.support import (
    HISTORIES,
    ORG,
    PROPERTY,
    SID,
    Ids,
    created,
    ended,
    first_frame,
    heartbeat,
    queued,
    starting,
    t,
)

MARCH = "2026-03"
LAUNCH = [(datetime(2026, 1, 10, tzinfo=UTC), "launch")]


def record(quality: s.Quality = "standard", seconds: int = 0, final: bool = False) -> b.UsageRecord:
    return b.UsageRecord(
        session_id=SID, org_id=ORG, avatar_id="av_stock_001", quality=quality, started_at=t(0),
        billable_seconds=seconds, minutes=b.minutes(seconds),
        credits_milli=b.credits_for(quality, seconds), final=final,
    )


def credits(balance_milli: int) -> b.Credits:
    return b.Credits(month=MARCH, plan="free", included=0, granted=balance_milli, used=0)


# ── Minutes and credits ─────────────────────────────────────────────────────────


@pytest.mark.parametrize(("seconds", "minutes"), [
    (0, 0), (1, 1), (59, 1), (60, 1), (61, 2), (119, 2), (120, 2), (121, 3), (3600, 60),
])
def test_minutes_are_rounded_up(seconds: int, minutes: int) -> None:
    assert b.minutes(seconds) == minutes


@pytest.mark.parametrize(("quality", "seconds", "credits"), [
    ("lite", 61, 1), ("standard", 61, 2), ("pro", 61, 4), ("mock", 61, 2),
    ("lite", 30, 0.5), ("lite", 180, 1.5), ("pro", 1, 2), ("standard", 0, 0),
])
def test_credits_are_minutes_times_the_tier_multiplier_and_mock_bills_as_standard(
    quality: s.Quality, seconds: int, credits: float
) -> None:
    assert b.display(b.credits_for(quality, seconds)) == credits


@PROPERTY
@given(st.sampled_from(["mock", "lite", "standard", "pro"]), st.integers(0, 10_000),
       st.integers(0, 10_000))
def test_credits_never_decrease_as_seconds_grow(quality: s.Quality, a: int, extra: int) -> None:
    assert b.credits_for(quality, a) <= b.credits_for(quality, a + extra)
    # A session is never billed less than the seconds it ran.
    assert b.minutes(a) * 60 >= a


def test_display_shows_whole_credits_as_integers() -> None:
    assert b.display(2_000) == 2 and isinstance(b.display(2_000), int)
    assert b.display(1_500) == 1.5
    assert b.display(-500) == -0.5


# ── A session's usage record ────────────────────────────────────────────────────


def test_a_session_no_worker_claimed_has_no_usage_record() -> None:
    for status in ("created", "queued", "canceled"):
        assert b.usage_record(support.given(status)) is None  # type: ignore[arg-type]


def test_a_running_session_has_a_provisional_record_from_its_last_heartbeat() -> None:
    state = s.fold([created(t(0), quality="pro"), queued(t(0)), starting(t(1)),
                    first_frame(t(2)), heartbeat(t(63), frames=1_525, billable_seconds=61)])
    assert state is not None
    usage = b.usage_record(state)
    assert usage == b.UsageRecord(
        session_id=SID, org_id=ORG, avatar_id="av_stock_001", quality="pro", started_at=t(1),
        billable_seconds=61, minutes=2, credits_milli=4_000, final=False,
    )
    assert usage.month == MARCH


def test_a_terminal_session_has_a_final_record_with_the_final_seconds() -> None:
    state = s.fold([*HISTORIES["running"], ended(t(9), billable_seconds=125)])
    assert state is not None
    usage = b.usage_record(state)
    assert usage is not None and usage.final
    assert (usage.billable_seconds, usage.minutes, usage.credits_milli) == (125, 3, 3_000)
    failed = b.usage_record(support.given("failed"))
    assert failed is not None and failed.final and failed.credits_milli == 0


# ── Calendar months ─────────────────────────────────────────────────────────────


def test_months_are_utc_calendar_months_with_an_exclusive_end() -> None:
    assert b.month_of(datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))) == (
        "2026-04")  # 01:30 UTC on April 1st
    assert b.month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC),
                                         datetime(2027, 1, 1, tzinfo=UTC))
    assert b.next_month("2026-12") == "2027-01" and b.previous_month("2027-01") == "2026-12"
    assert b.previous_month("2026-03") == "2026-02" and b.next_month("2026-02") == "2026-03"


# ── An org's credits in a month ─────────────────────────────────────────────────


def test_the_balance_is_the_plans_included_credits_plus_grants_minus_usage() -> None:
    credits = b.credits_in(MARCH, LAUNCH, {MARCH: 100_000}, {MARCH: 30_500})
    assert (credits.plan, credits.included, credits.granted, credits.used) == (
        "launch", PLANS["launch"].included_credits * 1_000, 100_000, 30_500)
    assert credits.balance == 2_500_000 + 100_000 - 30_500
    assert credits.can_start_session


def test_included_credits_come_from_the_plan_in_effect_at_the_end_of_the_month() -> None:
    plans = [(datetime(2026, 1, 10, tzinfo=UTC), "free"),
             (datetime(2026, 3, 20, tzinfo=UTC), "starter")]
    assert b.credits_in("2026-02", plans, {}, {}).included == 20_000
    assert b.credits_in(MARCH, plans, {}, {}).included == 600_000  # upgraded mid-month
    assert b.credits_in(MARCH, [], {}, {}).included == 0  # no such org


def test_grants_carry_over_and_only_usage_beyond_the_included_credits_draws_on_them() -> None:
    free = [(datetime(2026, 1, 1, tzinfo=UTC), "free")]  # 20 credits a month
    granted = {"2026-01": 50_000}
    # January: 30 used, 20 included → 10 from the grant; February: 15 used, within the plan.
    used = {"2026-01": 30_000, "2026-02": 15_000}
    february = b.credits_in("2026-02", free, granted, used)
    assert (february.included, february.granted, february.used) == (20_000, 40_000, 15_000)
    assert february.balance == 45_000
    # An overdraft in March is not carried as debt into April.
    used["2026-03"] = 100_000
    assert b.credits_in(MARCH, free, granted, used).balance == 20_000 + 40_000 - 100_000
    april = b.credits_in("2026-04", free, granted, used)
    assert (april.granted, april.balance) == (0, 20_000)


# ── Refusing a create ───────────────────────────────────────────────────────────


def test_a_create_needs_a_first_minute_of_its_tier_covered() -> None:
    b.require_credit(credits(1_000), "standard")
    b.require_credit(credits(500), "lite")
    with pytest.raises(Rejected) as refused:
        b.require_credit(credits(500), "standard")
    assert (refused.value.kind, refused.value.code) == (QUOTA, "insufficient_credit_balance")
    assert "0.5 credit" in refused.value.message
    with pytest.raises(Rejected):
        b.require_credit(credits(1_999), "pro")
    with pytest.raises(Rejected):
        b.require_credit(credits(0), "lite")
    assert credits(500).can_start_session and not credits(499).can_start_session


# ── Ending a running session ────────────────────────────────────────────────────


def test_a_session_whose_next_minute_is_covered_goes_on() -> None:
    assert not b.out_of_credit(credits(1_000), record("standard", 59), margin_seconds=10)
    assert not b.out_of_credit(credits(500), record("lite", 59), margin_seconds=10)


def test_without_a_next_minute_it_ends_just_before_its_paid_minute_runs_out() -> None:
    # 0.5 credit left cannot pay a standard minute: the session uses the minute it paid.
    assert not b.out_of_credit(credits(500), record("standard", 45), margin_seconds=10)
    assert b.out_of_credit(credits(500), record("standard", 50), margin_seconds=10)
    assert b.out_of_credit(credits(0), record("pro", 115), margin_seconds=10)
    # Claimed but not yet rendering, with nothing to pay its first minute: ends at once.
    assert b.out_of_credit(credits(0), record("lite", 0), margin_seconds=10)


def test_an_overdrawn_org_ends_its_sessions_at_once_but_never_a_finished_one() -> None:
    assert b.out_of_credit(credits(-1), record("standard", 1), margin_seconds=0)
    assert not b.out_of_credit(credits(-1), record("standard", 1, final=True), margin_seconds=0)


# ── Grants are org events ───────────────────────────────────────────────────────


def an_org() -> o.Org:
    state = o.evolve(None, o.OrgCreated(id="given", org_id=ORG, at=t(0), name="Acme",
                                        plan="free"))
    assert state is not None
    return state


def test_a_grant_is_recorded_as_an_event_every_time() -> None:
    command = o.GrantCredits(org_id=ORG, credits=100, now=t(5))
    events = o.decide(command, an_org(), Ids())
    assert events == [o.CreditsGranted(id="evt_000001", org_id=ORG, at=t(5), credits=100)]
    assert o.evolve(an_org(), events[0]) == an_org()  # the org itself does not change
    assert len(o.decide(command, an_org(), Ids())) == 1  # granting again grants again


@pytest.mark.parametrize("amount", [0, -5])
def test_a_grant_must_be_positive(amount: int) -> None:
    with pytest.raises(Rejected) as refused:
        o.decide(o.GrantCredits(org_id=ORG, credits=amount, now=t(5)), an_org(), Ids())
    assert (refused.value.code, refused.value.param) == ("invalid_credits", "credits")


def test_a_grant_needs_an_existing_org() -> None:
    with pytest.raises(Rejected) as refused:
        o.decide(o.GrantCredits(org_id=ORG, credits=5, now=t(5)), None, Ids())
    assert refused.value.code == "org_not_found"
