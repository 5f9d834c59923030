"""The Org aggregate: creation, API keys, plans, admission and the duration clamp."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import protoface.domain.events
from protoface.domain import org as o
from protoface.domain.errors import CONFLICT, QUOTA, Rejected
from protoface.domain.plans import PLANS, PUBLIC_PLANS
from tests.domain.support import ORG, PROPERTY, Ids, t

ENV = {"org_id": ORG}


def when(command: o.Command, state: o.Org | None) -> list[o.Event]:
    return o.decide(command, state, Ids())


def then_rejected(command: o.Command, state: o.Org | None) -> Rejected:
    with pytest.raises(Rejected) as caught:
        o.decide(command, state, Ids())
    return caught.value


def an_org(plan: str = "starter") -> o.Org:
    state = o.evolve(None, o.OrgCreated(id="given", **ENV, at=t(0), name="Acme", plan=plan))
    assert state is not None
    return state


def key_created(key_id: str, at_seconds: float = 1, key_hash: str = "h") -> o.ApiKeyCreated:
    return o.ApiKeyCreated(id=f"given_{key_id}", **ENV, at=t(at_seconds), key_id=key_id,
                           key_hash=key_hash, key_hint=key_id[-4:])


# ── Creating an org ─────────────────────────────────────────────────────────────


def test_create_org_records_name_and_plan() -> None:
    events = when(o.CreateOrg(org_id=ORG, name="Acme", plan="free", now=t(0)), None)
    assert events == [o.OrgCreated(id="evt_000001", **ENV, at=t(0), name="Acme", plan="free")]
    state = o.evolve(None, events[0])
    assert state == o.Org(id=ORG, name="Acme", plan="free", created_at=t(0), keys=())
    assert state.plan_limits == PLANS["free"]


def test_create_org_twice_emits_nothing() -> None:
    assert when(o.CreateOrg(org_id=ORG, name="Other", plan="scale", now=t(5)), an_org()) == []


def test_a_replayed_org_created_event_does_not_reset_the_org() -> None:
    state = o.evolve(an_org("starter"), key_created("key_1"))
    again = o.OrgCreated(id="dup", **ENV, at=t(9), name="Renamed", plan="free")
    assert o.evolve(state, again) == state


@pytest.mark.parametrize("plan", ["gold", "", "FREE"])
def test_create_org_with_an_unknown_plan_is_rejected(plan: str) -> None:
    error = then_rejected(o.CreateOrg(org_id=ORG, name="Acme", plan=plan, now=t(0)), None)
    assert (error.kind, error.code) == (CONFLICT, "unknown_plan")


# ── API keys ────────────────────────────────────────────────────────────────────


def test_create_api_key_appends_the_key_once() -> None:
    command = o.CreateApiKey(org_id=ORG, key_id="key_abcd", key_hash="sha", key_hint="abcd",
                             now=t(3))
    events = when(command, an_org())
    assert events == [o.ApiKeyCreated(id="evt_000001", **ENV, at=t(3), key_id="key_abcd",
                                      key_hash="sha", key_hint="abcd")]
    state = o.evolve(an_org(), events[0])
    assert state is not None
    assert state.keys == (o.ApiKey("key_abcd", "sha", "abcd", t(3), revoked=False),)
    assert when(command, state) == []


def test_keys_keep_their_creation_order() -> None:
    state = o.evolve(o.evolve(an_org(), key_created("key_1", 1)), key_created("key_2", 2))
    assert state is not None
    assert [k.key_id for k in state.keys] == ["key_1", "key_2"]


def test_a_replayed_api_key_event_does_not_duplicate_the_key() -> None:
    once = o.evolve(an_org(), key_created("key_1"))
    twice = o.evolve(once, key_created("key_1", at_seconds=7, key_hash="other"))
    assert twice == once


def test_an_api_key_for_an_unknown_org_is_rejected_as_not_found() -> None:
    error = then_rejected(o.CreateApiKey(org_id=ORG, key_id="key_1", key_hash="h",
                                         key_hint="ey_1", now=t(1)), None)
    assert (error.kind, error.code) == ("not_found", "org_not_found")


def test_revoking_a_key_flags_only_that_key() -> None:
    state = o.evolve(o.evolve(an_org(), key_created("key_1")), key_created("key_2"))
    revoked = o.evolve(state, o.ApiKeyRevoked(id="r", **ENV, at=t(4), key_id="key_1"))
    assert revoked is not None
    assert [(k.key_id, k.revoked) for k in revoked.keys] == [("key_1", True), ("key_2", False)]


def test_revoking_an_unknown_key_changes_nothing() -> None:
    state = o.evolve(an_org(), key_created("key_1"))
    assert o.evolve(state, o.ApiKeyRevoked(id="r", **ENV, at=t(4), key_id="key_9")) == state


def test_org_events_before_the_org_exists_are_ignored() -> None:
    assert o.evolve(None, key_created("key_1")) is None
    assert o.evolve(None, o.ApiKeyRevoked(id="r", **ENV, at=t(1), key_id="key_1")) is None
    assert o.evolve(None, o.PlanChanged(id="p", **ENV, at=t(1), plan="scale")) is None


# ── Plans ───────────────────────────────────────────────────────────────────────


def test_change_plan_records_the_new_plan() -> None:
    events = when(o.ChangePlan(org_id=ORG, plan="scale", now=t(8)), an_org("starter"))
    assert events == [o.PlanChanged(id="evt_000001", **ENV, at=t(8), plan="scale")]
    state = o.evolve(an_org("starter"), events[0])
    assert state is not None
    assert state.plan == "scale"
    assert state.plan_limits.max_concurrency == PLANS["scale"].max_concurrency


def test_change_to_the_current_plan_emits_nothing() -> None:
    assert when(o.ChangePlan(org_id=ORG, plan="starter", now=t(8)), an_org("starter")) == []


def test_change_to_an_unknown_plan_is_rejected() -> None:
    error = then_rejected(o.ChangePlan(org_id=ORG, plan="platinum", now=t(8)), an_org())
    assert error.code == "unknown_plan"


def test_change_plan_of_an_unknown_org_is_rejected_as_not_found() -> None:
    error = then_rejected(o.ChangePlan(org_id=ORG, plan="scale", now=t(8)), None)
    assert error.code == "org_not_found"


def test_internal_plan_is_not_public() -> None:
    assert "internal" in PLANS
    assert "internal" not in {p.key for p in PUBLIC_PLANS}
    assert {p.key for p in PUBLIC_PLANS} == {"free", "starter", "launch", "scale"}


# ── Admission ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("plan", PLANS.values(), ids=lambda p: p.key)
def test_admit_allows_sessions_below_the_plan_cap(plan: o.Plan) -> None:
    o.admit(plan, 0)
    o.admit(plan, plan.max_concurrency - 1)


@pytest.mark.parametrize("plan", PLANS.values(), ids=lambda p: p.key)
def test_admit_refuses_at_the_cap_with_a_quota_error(plan: o.Plan) -> None:
    with pytest.raises(Rejected) as caught:
        o.admit(plan, plan.max_concurrency)
    assert (caught.value.kind, caught.value.code) == (QUOTA, "concurrent_sessions")
    assert caught.value.kind == "quota_exceeded"
    assert plan.name in caught.value.message


def test_free_plan_admits_exactly_one_session() -> None:
    o.admit(PLANS["free"], 0)
    with pytest.raises(Rejected):
        o.admit(PLANS["free"], 1)


@PROPERTY
@given(st.sampled_from(list(PLANS.values())), st.integers(min_value=0, max_value=200_000))
def test_admit_refuses_exactly_when_active_sessions_reach_the_cap(
    plan: o.Plan, active: int,
) -> None:
    try:
        o.admit(plan, active)
    except Rejected as error:
        assert error.code == "concurrent_sessions"
        assert active >= plan.max_concurrency
    else:
        assert active < plan.max_concurrency


# ── Group admission ─────────────────────────────────────────────────────────────


def group(n: int) -> list[str]:
    return [f"sess_{i:03d}" for i in range(n)]


def test_a_group_of_one_is_admitted_by_the_single_admission_event() -> None:
    events, admitted = o.decide_group_admission(an_org("launch"), ["sess_1"], 0, t(1), Ids())
    assert admitted == 1
    assert events == [o.SessionAdmitted(id="evt_000001", **ENV, at=t(1), session_id="sess_1")]


def test_a_group_is_admitted_by_one_event_naming_every_session_in_order() -> None:
    events, admitted = o.decide_group_admission(an_org("launch"), group(4), 3, t(1), Ids())
    assert admitted == 4
    assert events == [o.SessionsAdmitted(id="evt_000001", **ENV, at=t(1),
                                         session_ids=tuple(group(4)))]
    assert isinstance(events[0], o.SessionsAdmitted)
    assert o.admitted_sessions(events[0]) == tuple(group(4))


def test_a_group_larger_than_the_room_left_admits_its_first_arrivals_only() -> None:
    # Starter: cap 2, one session running → room for one of the three.
    events, admitted = o.decide_group_admission(an_org("starter"), group(3), 1, t(1), Ids())
    assert admitted == 1
    assert events == [o.SessionAdmitted(id="evt_000001", **ENV, at=t(1), session_id="sess_000")]


def test_a_group_at_the_cap_writes_nothing() -> None:
    assert o.decide_group_admission(an_org("starter"), group(3), 2, t(1), Ids()) == ([], 0)


def test_a_group_is_bounded_in_size() -> None:
    with pytest.raises(ValueError):
        o.decide_group_admission(an_org("internal"), group(o.MAX_GROUP + 1), 0, t(1), Ids())


@PROPERTY
@given(st.sampled_from(list(PLANS.values())), st.integers(min_value=0, max_value=120),
       st.integers(min_value=1, max_value=o.MAX_GROUP))
def test_group_admission_fills_the_cap_exactly_and_never_overshoots_it(
    plan: o.Plan, active: int, size: int,
) -> None:
    # Given any plan, any number of active sessions and any group of creates, the
    # admitted ones are the earliest arrivals, exactly as many as the cap has room
    # for, and the admission names each of them once (as successive single
    # admissions would: the group changes the cost, not the outcome).
    ids = group(size)
    events, admitted = o.decide_group_admission(an_org(plan.key), ids, active, t(1), Ids())
    assert admitted == max(0, min(size, plan.max_concurrency - active))
    assert active + admitted <= max(active, plan.max_concurrency)
    named = [sid for e in events if isinstance(e, o.SessionAdmitted | o.SessionsAdmitted)
             for sid in o.admitted_sessions(e)]
    assert len(events) == (1 if admitted else 0)
    assert named == ids[:admitted]
    one_by_one = 0
    for _ in ids:
        try:
            o.admit(plan, active + one_by_one)
        except Rejected:
            break
        one_by_one += 1
    assert admitted == one_by_one


# ── Duration clamp ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("plan", "expected"), [
    ("free", 120), ("starter", 600), ("launch", 600), ("scale", 600), ("internal", 600),
])
def test_clamp_duration_defaults_to_ten_minutes_within_the_plan_limit(
    plan: str, expected: int,
) -> None:
    assert o.clamp_duration(PLANS[plan], None) == expected


@pytest.mark.parametrize(("plan", "requested", "expected"), [
    ("free", 60, 60), ("free", 120, 120), ("free", 3_600, 120),
    ("launch", 900, 900), ("launch", 7_200, 1_200), ("scale", 3_600, 3_600),
])
def test_clamp_duration_caps_a_request_at_the_plan_session_time_limit(
    plan: str, requested: int, expected: int,
) -> None:
    assert o.clamp_duration(PLANS[plan], requested) == expected


@PROPERTY
@given(st.sampled_from(list(PLANS.values())),
       st.none() | st.integers(min_value=1, max_value=100_000))
def test_clamp_duration_never_exceeds_the_plan_and_never_raises_a_request(
    plan: o.Plan, requested: int | None,
) -> None:
    clamped = o.clamp_duration(plan, requested)
    assert clamped <= plan.session_time_limit_seconds
    assert clamped <= (600 if requested is None else requested)
    assert clamped in (plan.session_time_limit_seconds, 600 if requested is None else requested)


# ── Storage format ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("event", [
    o.OrgCreated(id="e1", **ENV, at=t(0), name="Acme", plan="free"),
    o.ApiKeyCreated(id="e2", **ENV, at=t(1), key_id="key_1", key_hash="h", key_hint="ey_1"),
    o.ApiKeyRevoked(id="e3", **ENV, at=t(2), key_id="key_1"),
    o.PlanChanged(id="e4", **ENV, at=t(3), plan="scale"),
    o.SessionAdmitted(id="e5", **ENV, at=t(4), session_id="sess_1"),
    o.SessionsAdmitted(id="e6", **ENV, at=t(5), session_ids=("sess_2", "sess_3")),
], ids=lambda e: type(e).__name__)
def test_org_events_round_trip_through_the_shared_event_decoder(event: o.Event) -> None:
    decoded = msgspec.json.Decoder(protoface.domain.events.Event).decode(msgspec.json.encode(event))
    assert type(decoded) is type(event)
    assert decoded == event
