"""The Session decider, example by example: given events, when a command, then events
(or a rejection)."""

from __future__ import annotations

import pytest

from protoface.domain import session as s
from protoface.domain.errors import CONFLICT, Rejected
from tests.domain.support import (
    AVATAR,
    NON_TERMINAL,
    ORG,
    OTHER_WORKER,
    SID,
    TERMINAL,
    WORKER,
    Ids,
    create_command,
    created,
    ending,
    first_frame,
    given,
    heartbeat,
    queued,
    starting,
    t,
)


def when(command: s.Command, state: s.Session | None) -> list[s.Event]:
    """Decide ``command`` with ids ``evt_000001``, ``evt_000002``, …"""
    return s.decide(command, state, Ids())


def then_rejected(command: s.Command, state: s.Session | None) -> Rejected:
    with pytest.raises(Rejected) as caught:
        s.decide(command, state, Ids())
    return caught.value


ENV = {"session_id": SID, "org_id": ORG}


# ── Create ──────────────────────────────────────────────────────────────────────


def test_create_records_the_session_and_queues_it() -> None:
    events = when(create_command(t(0)), None)

    assert events == [
        s.SessionCreated(
            id="evt_000001", **ENV, at=t(0), avatar_id=AVATAR, quality="standard",
            idle_timeout_seconds=60, max_duration_seconds=600,
            metadata={"customer": "acme"}, transport=s.PipecatTransport(), api_key_id="key_1",
        ),
        s.SessionQueued(id="evt_000002", **ENV, at=t(0)),
    ]
    state = s.fold(events)
    assert state is not None
    assert state.status == "queued"
    assert state.created_at == t(0)
    assert (state.started_at, state.first_frame_at, state.ended_at, state.failed_at) == (
        None, None, None, None)


def test_create_twice_emits_nothing() -> None:
    assert when(create_command(t(5)), given("queued")) == []


@pytest.mark.parametrize("status", [*NON_TERMINAL, *TERMINAL])
def test_create_of_an_existing_session_emits_nothing_in_any_state(status: s.Status) -> None:
    assert when(create_command(t(60)), given(status)) == []


@pytest.mark.parametrize("command", [
    s.Claim(session_id=SID, now=t(1), worker_id=WORKER),
    s.ReportFirstFrame(session_id=SID, now=t(1)),
    s.ReportUsage(session_id=SID, now=t(1), frames=1, billable_seconds=1),
    s.RequestEnd(session_id=SID, now=t(1)),
    s.Finish(session_id=SID, now=t(1)),
    s.Fail(session_id=SID, now=t(1), code=s.INTERNAL, message="x"),
], ids=lambda c: type(c).__name__)
def test_commands_on_an_unknown_session_are_rejected_as_not_found(command: s.Command) -> None:
    error = then_rejected(command, None)
    assert (error.kind, error.code) == ("not_found", "session_not_found")


def test_a_non_session_command_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        s.decide(s.Command(session_id=SID, now=t(1)), given("queued"), Ids())


# ── The whole lifecycle ─────────────────────────────────────────────────────────


def test_lifecycle_created_queued_starting_running_ending_ended_sets_each_timestamp() -> None:
    log: list[s.Event] = []

    def step(command: s.Command) -> s.Session:
        events = s.decide(command, s.fold(log), Ids())
        assert events, f"{command!r} should have produced events"
        log.extend(events)
        state = s.fold(log)
        assert state is not None
        return state

    state = step(create_command(t(0)))
    assert state.status == "queued"
    assert [e.at for e in log] == [t(0), t(0)]

    state = step(s.Claim(session_id=SID, now=t(2), worker_id=WORKER))
    assert state.status == "starting"
    assert (state.worker_id, state.started_at, state.first_frame_at) == (WORKER, t(2), None)

    state = step(s.ReportFirstFrame(session_id=SID, now=t(5)))
    assert state.status == "running"
    assert (state.started_at, state.first_frame_at) == (t(2), t(5))

    state = step(s.ReportUsage(session_id=SID, now=t(15), frames=250, billable_seconds=10))
    assert state.status == "running"
    assert (state.frames, state.billable_seconds) == (250, 10)

    state = step(s.RequestEnd(session_id=SID, now=t(20), reason="requested"))
    assert state.status == "ending"
    assert (state.end_reason, state.ended_at) == ("requested", None)

    state = step(s.Finish(session_id=SID, now=t(22), frames=300, billable_seconds=12))
    assert state.status == "ended"
    assert state.terminal
    assert (state.created_at, state.started_at, state.first_frame_at, state.ended_at) == (
        t(0), t(2), t(5), t(22))
    assert (state.failed_at, state.failure) == (None, None)
    assert (state.frames, state.billable_seconds) == (300, 12)
    assert state.end_reason == "requested"

    assert [e.id for e in log] == ["evt_000001", "evt_000002"] + ["evt_000001"] * 5
    assert [type(e) for e in log] == [
        s.SessionCreated, s.SessionQueued, s.SessionStarting, s.SessionFirstFrame,
        s.SessionHeartbeat, s.SessionEnding, s.SessionEnded,
    ]


# ── Claim ───────────────────────────────────────────────────────────────────────


def test_claim_of_a_queued_session_starts_it_on_that_worker() -> None:
    assert when(s.Claim(session_id=SID, now=t(7), worker_id=WORKER), given("queued")) == [
        s.SessionStarting(id="evt_000001", **ENV, at=t(7), worker_id=WORKER)
    ]


@pytest.mark.parametrize("status", ["starting", "running", "ending"])
def test_claim_by_a_second_worker_is_rejected_as_not_claimable(status: s.Status) -> None:
    error = then_rejected(s.Claim(session_id=SID, now=t(9), worker_id=OTHER_WORKER),
                          given(status))
    assert (error.kind, error.code) == (CONFLICT, "session_not_claimable")


@pytest.mark.parametrize("status", ["starting", "running", "ending"])
def test_same_worker_claiming_again_emits_nothing(status: s.Status) -> None:
    assert when(s.Claim(session_id=SID, now=t(9), worker_id=WORKER), given(status)) == []


def test_claim_of_a_created_but_not_yet_queued_session_is_rejected() -> None:
    error = then_rejected(s.Claim(session_id=SID, now=t(1), worker_id=WORKER), given("created"))
    assert error.code == "session_not_claimable"


# ── First frame ─────────────────────────────────────────────────────────────────


def test_first_frame_while_starting_makes_the_session_running() -> None:
    events = when(s.ReportFirstFrame(session_id=SID, now=t(3)), given("starting"))
    assert events == [s.SessionFirstFrame(id="evt_000001", **ENV, at=t(3))]
    state = s.fold(events, given("starting"))
    assert state is not None
    assert (state.status, state.first_frame_at) == ("running", t(3))


def test_first_frame_while_ending_records_the_frame_but_keeps_ending() -> None:
    state = s.fold([created(t(0)), queued(t(0)), starting(t(1)), ending(t(2), "shutdown")])
    events = when(s.ReportFirstFrame(session_id=SID, now=t(3)), state)
    after = s.fold(events, state)
    assert after is not None
    assert (after.status, after.first_frame_at, after.end_reason) == ("ending", t(3), "shutdown")


def test_first_frame_twice_emits_nothing() -> None:
    assert when(s.ReportFirstFrame(session_id=SID, now=t(9)), given("running")) == []


@pytest.mark.parametrize("status", ["created", "queued"])
def test_first_frame_before_claim_is_rejected(status: s.Status) -> None:
    error = then_rejected(s.ReportFirstFrame(session_id=SID, now=t(1)), given(status))
    assert (error.kind, error.code) == (CONFLICT, "invalid_session_state")


# ── Usage (heartbeats) ──────────────────────────────────────────────────────────


def test_heartbeats_carry_cumulative_counters_not_increments() -> None:
    state = given("starting")
    for now, frames, seconds in [(t(5), 100, 4), (t(10), 250, 9)]:
        events = when(s.ReportUsage(session_id=SID, now=now, frames=frames,
                                    billable_seconds=seconds), state)
        assert events == [s.SessionHeartbeat(id="evt_000001", **ENV, at=now, frames=frames,
                                             billable_seconds=seconds)]
        state = s.fold(events, state)
    assert (state.frames, state.billable_seconds) == (250, 9)


@pytest.mark.parametrize(("frames", "seconds"), [(29, 1), (30, 0), (0, 0)])
def test_usage_that_regresses_either_counter_is_rejected(frames: int, seconds: int) -> None:
    state = given("running")
    assert (state.frames, state.billable_seconds) == (30, 1)
    error = then_rejected(
        s.ReportUsage(session_id=SID, now=t(9), frames=frames, billable_seconds=seconds), state)
    assert (error.kind, error.code) == (CONFLICT, "usage_regressed")


def test_usage_that_advances_only_one_counter_is_recorded() -> None:
    events = when(s.ReportUsage(session_id=SID, now=t(9), frames=31, billable_seconds=1),
                  given("running"))
    assert events == [s.SessionHeartbeat(id="evt_000001", **ENV, at=t(9), frames=31,
                                         billable_seconds=1)]


def test_identical_usage_emits_nothing() -> None:
    assert when(s.ReportUsage(session_id=SID, now=t(9), frames=30, billable_seconds=1),
                given("running")) == []


def test_usage_while_ending_is_still_recorded() -> None:
    events = when(s.ReportUsage(session_id=SID, now=t(9), frames=35, billable_seconds=2),
                  given("ending"))
    after = s.fold(events, given("ending"))
    assert after is not None
    assert (after.status, after.frames, after.billable_seconds) == ("ending", 35, 2)


@pytest.mark.parametrize("status", ["created", "queued"])
def test_usage_before_claim_is_rejected(status: s.Status) -> None:
    error = then_rejected(
        s.ReportUsage(session_id=SID, now=t(1), frames=1, billable_seconds=1), given(status))
    assert (error.kind, error.code) == (CONFLICT, "invalid_session_state")


# ── RequestEnd ──────────────────────────────────────────────────────────────────


def test_end_before_claim_cancels() -> None:
    events = when(s.RequestEnd(session_id=SID, now=t(3)), given("queued"))
    assert events == [s.SessionCanceled(id="evt_000001", **ENV, at=t(3))]
    state = s.fold(events, given("queued"))
    assert state is not None
    assert (state.status, state.ended_at, state.started_at, state.worker_id) == (
        "canceled", t(3), None, None)


def test_end_of_a_created_session_cancels() -> None:
    events = when(s.RequestEnd(session_id=SID, now=t(3)), given("created"))
    assert events == [s.SessionCanceled(id="evt_000001", **ENV, at=t(3))]


def test_end_while_running_starts_ending_and_records_the_reason() -> None:
    events = when(s.RequestEnd(session_id=SID, now=t(9), reason="max_duration"), given("running"))
    assert events == [s.SessionEnding(id="evt_000001", **ENV, at=t(9), reason="max_duration")]
    state = s.fold(events, given("running"))
    assert state is not None
    assert (state.status, state.end_reason, state.ended_at) == ("ending", "max_duration", None)


def test_end_while_starting_starts_ending() -> None:
    events = when(s.RequestEnd(session_id=SID, now=t(9)), given("starting"))
    assert events == [s.SessionEnding(id="evt_000001", **ENV, at=t(9), reason="requested")]


def test_end_again_while_ending_emits_nothing() -> None:
    assert when(s.RequestEnd(session_id=SID, now=t(9), reason="shutdown"), given("ending")) == []


# ── Finish ──────────────────────────────────────────────────────────────────────


def test_finish_keeps_the_reason_from_the_earlier_ending() -> None:
    state = given("ending")
    assert state.end_reason == "idle_timeout"
    events = when(s.Finish(session_id=SID, now=t(9), reason="completed", frames=40,
                           billable_seconds=2), state)
    assert events == [s.SessionEnded(id="evt_000001", **ENV, at=t(9), reason="idle_timeout",
                                     frames=40, billable_seconds=2)]
    after = s.fold(events, state)
    assert after is not None
    assert (after.status, after.end_reason, after.ended_at) == ("ended", "idle_timeout", t(9))


def test_finish_without_an_earlier_ending_records_its_own_reason() -> None:
    events = when(s.Finish(session_id=SID, now=t(9), reason="participant_left"), given("running"))
    after = s.fold(events, given("running"))
    assert after is not None
    assert (after.status, after.end_reason, after.ended_at) == ("ended", "participant_left", t(9))


def test_finish_never_reports_less_usage_than_the_last_heartbeat() -> None:
    events = when(s.Finish(session_id=SID, now=t(9), frames=5, billable_seconds=0),
                  given("running"))
    assert events == [s.SessionEnded(id="evt_000001", **ENV, at=t(9), reason="completed",
                                     frames=30, billable_seconds=1)]


@pytest.mark.parametrize("status", ["created", "queued"])
def test_finish_before_claim_is_rejected(status: s.Status) -> None:
    error = then_rejected(s.Finish(session_id=SID, now=t(1)), given(status))
    assert (error.kind, error.code) == (CONFLICT, "invalid_session_state")


# ── Fail ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_fail_from_any_non_terminal_state_fails_the_session(status: s.Status) -> None:
    before = given(status)
    events = when(s.Fail(session_id=SID, now=t(30), code=s.AVATAR_LOAD_FAILED,
                         message="weights missing"), before)
    assert events == [s.SessionFailed(
        id="evt_000001", **ENV, at=t(30), code=s.AVATAR_LOAD_FAILED, message="weights missing",
        frames=before.frames, billable_seconds=before.billable_seconds)]
    after = s.fold(events, before)
    assert after is not None
    assert after.status == "failed"
    assert after.failed_at == t(30)
    assert after.failure == s.Failure(code=s.AVATAR_LOAD_FAILED, message="weights missing")
    assert after.ended_at is None
    assert (after.started_at, after.first_frame_at) == (before.started_at, before.first_frame_at)


def test_fail_keeps_the_higher_of_reported_and_recorded_usage() -> None:
    events = when(s.Fail(session_id=SID, now=t(9), code=s.WORKER_LOST, message="gone",
                         frames=10, billable_seconds=7), given("running"))
    assert len(events) == 1
    failed_event = events[0]
    assert isinstance(failed_event, s.SessionFailed)
    assert (failed_event.frames, failed_event.billable_seconds) == (30, 7)


# ── Terminal states absorb ──────────────────────────────────────────────────────

ABSORBED = [
    s.RequestEnd(session_id=SID, now=t(60)),
    s.RequestEnd(session_id=SID, now=t(60), reason="shutdown"),
    s.Finish(session_id=SID, now=t(60), frames=10_000, billable_seconds=500),
    s.Fail(session_id=SID, now=t(60), code=s.INTERNAL, message="late"),
    s.ReportFirstFrame(session_id=SID, now=t(60)),
    create_command(t(60)),
]
REFUSED = [
    s.Claim(session_id=SID, now=t(60), worker_id=WORKER),
    s.Claim(session_id=SID, now=t(60), worker_id=OTHER_WORKER),
    s.ReportUsage(session_id=SID, now=t(60), frames=10_000, billable_seconds=500),
]


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("command", ABSORBED, ids=lambda c: type(c).__name__)
def test_terminal_session_absorbs_end_finish_and_fail(status: s.Status,
                                                      command: s.Command) -> None:
    assert when(command, given(status)) == []


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("command", REFUSED, ids=lambda c: type(c).__name__)
def test_terminal_session_rejects_claim_and_usage(status: s.Status, command: s.Command) -> None:
    error = then_rejected(command, given(status))
    assert error.kind == CONFLICT
    assert error.code in {"session_not_claimable", "invalid_session_state"}


@pytest.mark.parametrize("status", TERMINAL)
def test_events_arriving_after_a_terminal_event_do_not_change_the_state(
    status: s.Status,
) -> None:
    state = given(status)
    late = [starting(t(90), OTHER_WORKER), first_frame(t(91)),
            heartbeat(t(92), 99_999, 999), ending(t(93), "shutdown")]
    assert s.fold(late, state) == state


def test_ended_state_prefers_the_larger_usage_of_heartbeat_and_ended_event() -> None:
    state = s.fold([created(t(0)), queued(t(0)), starting(t(1)),
                    heartbeat(t(2), frames=50, billable_seconds=3)])
    assert state is not None
    late = s.SessionEnded(id="x", **ENV, at=t(3), frames=10, billable_seconds=9)
    after = s.evolve(state, late)
    assert after is not None
    assert (after.frames, after.billable_seconds) == (50, 9)


def test_session_state_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        given("running").status = "ended"  # type: ignore[misc]
