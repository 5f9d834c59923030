"""The Avatar aggregate: given its events, when a command arrives, then events or Rejected."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import protoface.domain.events
from protoface.domain import avatar as a
from protoface.domain.errors import Rejected
from protoface.domain.plans import PLANS
from tests.domain.support import ORG, PROPERTY, T0, Ids, t

AV = "av_01JN0000000000000000000001"
OTHER_ORG = "org_01JN0000000000000000000002"
SOURCE = a.SourceImage(key=f"{AV}/source", sha256="ab" * 32, size=1234,
                       content_type="image/png", width=256, height=256)
FREE = PLANS["free"]  # one custom avatar slot


def create(custom_avatars: int = 0, **overrides: object) -> a.Create:
    fields: dict[str, object] = dict(
        avatar_id=AV, org_id=ORG, now=T0, name="Ada", runtime_type="avtr1", source=SOURCE,
        plan=PLANS["starter"], custom_avatars=custom_avatars)
    return a.Create(**{**fields, **overrides})  # type: ignore[arg-type]


def created() -> a.AvatarCreated:
    return a.AvatarCreated(id="evt_c", avatar_id=AV, org_id=ORG, at=T0, name="Ada",
                           runtime_type="avtr1", source=SOURCE)


def built() -> a.AvatarBuilt:
    return a.AvatarBuilt(id="evt_b", avatar_id=AV, org_id=ORG, at=t(2),
                         asset_key=f"{AV}/asset", asset_sha256="cd" * 32)


def failed() -> a.AvatarFailed:
    return a.AvatarFailed(id="evt_f", avatar_id=AV, org_id=ORG, at=t(2),
                          failure_reason="No face detected in source image.")


def deleted() -> a.AvatarDeleted:
    return a.AvatarDeleted(id="evt_d", avatar_id=AV, org_id=ORG, at=t(3))


def record_built() -> a.RecordBuilt:
    return a.RecordBuilt(avatar_id=AV, org_id=ORG, now=t(2), asset_key=f"{AV}/asset",
                         asset_sha256="cd" * 32, asset_size=10)


def record_failed() -> a.RecordFailed:
    return a.RecordFailed(avatar_id=AV, org_id=ORG, now=t(2), failure_reason="No face.")


def given_(*events: a.Event) -> a.Avatar | None:
    return a.fold(list(events))


# ── Upload ──────────────────────────────────────────────────────────────────────


def test_an_upload_creates_a_processing_avatar() -> None:
    events = a.decide(create(), None, Ids())
    assert events == [a.AvatarCreated(
        id="evt_000001", avatar_id=AV, org_id=ORG, at=T0, name="Ada", runtime_type="avtr1",
        source=SOURCE)]
    state = a.fold(events)
    assert state is not None and state.status == "processing" and state.asset_key is None


def test_an_upload_past_the_plans_slots_is_refused_with_custom_avatar_slots() -> None:
    with pytest.raises(Rejected) as refused:
        a.decide(create(custom_avatars=1, plan=FREE), None, Ids())
    assert (refused.value.kind, refused.value.code) == ("quota_exceeded", "custom_avatar_slots")
    assert a.decide(create(custom_avatars=0, plan=FREE), None, Ids())


@pytest.mark.parametrize(("overrides", "code", "param"), [
    ({"runtime_type": "avtr9"}, "unsupported_runtime_type", "runtime_type"),
    ({"name": "  "}, "invalid_value", "name"),
    ({"name": "x" * 201}, "invalid_value", "name"),
])
def test_an_upload_with_bad_fields_is_refused_naming_the_field(
    overrides: dict[str, object], code: str, param: str
) -> None:
    with pytest.raises(Rejected) as refused:
        a.decide(create(**overrides), None, Ids())
    assert (refused.value.code, refused.value.param) == (code, param)


def test_creating_an_existing_avatar_again_decides_nothing() -> None:
    assert a.decide(create(), given_(created()), Ids()) == []


# ── Build results ───────────────────────────────────────────────────────────────


def test_a_build_makes_a_processing_avatar_ready() -> None:
    events = a.decide(record_built(), given_(created()), Ids())
    assert [type(e) for e in events] == [a.AvatarBuilt]
    state = a.fold(events, given_(created()))
    assert state is not None and state.status == "ready" and state.asset_key == f"{AV}/asset"


def test_a_failed_build_records_the_human_reason() -> None:
    state = a.fold(a.decide(record_failed(), given_(created()), Ids()), given_(created()))
    assert state is not None and (state.status, state.failure_reason) == ("failed", "No face.")


@pytest.mark.parametrize("history", [[created(), built()], [created(), failed()],
                                     [created(), deleted()]])
@pytest.mark.parametrize("command", [record_built(), record_failed()])
def test_a_redelivered_build_result_decides_nothing(
    history: list[a.Event], command: a.Command
) -> None:
    assert a.decide(command, given_(*history), Ids()) == []


def test_a_build_result_for_an_unknown_avatar_is_not_found() -> None:
    with pytest.raises(Rejected) as refused:
        a.decide(record_built(), None, Ids())
    assert refused.value.code == "avatar_not_found"


# ── Delete ──────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("history", [[created()], [created(), built()],
                                     [created(), failed()]])
def test_an_avatar_can_be_deleted_in_any_live_state(history: list[a.Event]) -> None:
    command = a.Delete(avatar_id=AV, org_id=ORG, now=t(5))
    events = a.decide(command, given_(*history), Ids())
    assert [type(e) for e in events] == [a.AvatarDeleted]
    state = a.fold(events, given_(*history))
    assert state is not None and state.status == "deleted"


@pytest.mark.parametrize(("history", "org"), [([created(), deleted()], ORG), ([], ORG),
                                              ([created()], OTHER_ORG)])
def test_deleting_a_deleted_missing_or_foreign_avatar_is_not_found(
    history: list[a.Event], org: str
) -> None:
    with pytest.raises(Rejected) as refused:
        a.decide(a.Delete(avatar_id=AV, org_id=org, now=t(5)), given_(*history), Ids())
    assert (refused.value.kind, refused.value.code) == ("not_found", "avatar_not_found")


@pytest.mark.parametrize(("history", "ready"), [([created()], False), ([created(), built()], True),
                                                ([created(), failed()], False)])
def test_only_a_ready_avatar_can_run_sessions(history: list[a.Event], ready: bool) -> None:
    state = given_(*history)
    assert state is not None
    if ready:
        a.require_ready(state)
    else:
        with pytest.raises(Rejected) as refused:
            a.require_ready(state)
        assert (refused.value.kind, refused.value.code) == ("conflict", "avatar_not_ready")


def test_avatar_events_round_trip_through_the_log_encoding() -> None:
    for event in (created(), built(), failed(), deleted()):
        data = msgspec.json.encode(event)
        assert msgspec.json.decode(data, type=protoface.domain.events.Event) == event


# ── Properties ──────────────────────────────────────────────────────────────────

commands = st.sampled_from([
    record_built(), record_failed(), a.Delete(avatar_id=AV, org_id=ORG, now=t(5)),
    a.Delete(avatar_id=AV, org_id=OTHER_ORG, now=t(5)), create(),
])


@PROPERTY
@given(st.lists(commands, max_size=12))
def test_any_command_sequence_moves_only_along_the_lifecycle(sequence: list[a.Command]) -> None:
    """From processing, exactly one build outcome can land; deleted absorbs everything;
    a ready avatar's asset and a failed one's reason never change."""
    state = a.fold(a.decide(create(), None, Ids()))
    ids = Ids()
    seen = ["processing"]
    for command in sequence:
        try:
            events = a.decide(command, state, ids)
        except Rejected as refused:
            assert refused.code == "avatar_not_found"
            assert state is not None
            assert state.status == "deleted" or command.org_id != state.org_id
            continue
        before = state
        state = a.fold(events, state)
        assert state is not None
        settled = before is not None and before.status in ("ready", "failed")
        if settled and state.status != "deleted":
            assert state == before
        if state.status != seen[-1]:
            seen.append(state.status)
    allowed = {("processing",), ("processing", "ready"), ("processing", "failed"),
               ("processing", "deleted"), ("processing", "ready", "deleted"),
               ("processing", "failed", "deleted")}
    assert tuple(seen) in allowed


@PROPERTY
@given(st.integers(min_value=0, max_value=60), st.sampled_from(sorted(PLANS)))
def test_an_upload_is_admitted_exactly_below_the_plans_slots(used: int, plan: str) -> None:
    limits = PLANS[plan]
    try:
        a.decide(create(custom_avatars=used, plan=limits), None, Ids())
        admitted = True
    except Rejected:
        admitted = False
    assert admitted == (used < limits.custom_avatar_slots)
