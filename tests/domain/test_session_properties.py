"""Properties of the Session aggregate over random command sequences.

Every sequence starts with ``Create`` and then throws arbitrary commands at the
session (claims by competing workers, regressing and repeated usage, ends,
finishes and failures in any order) with a clock that moves forward one second
per command. Rejected commands leave the log untouched, as they would in the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from typing import get_args

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import protoface.domain.events
from protoface.domain import session as s
from protoface.domain.errors import Rejected
from tests.domain.support import ORG, PROPERTY, SID, T0, Clock, Ids, create_command

# ── The allowed transition graph, written down independently of the code ────────

ALLOWED: dict[s.Status | None, set[s.Status]] = {
    None: {"created"},
    "created": {"queued"},
    "queued": {"starting", "canceled", "failed"},
    "starting": {"running", "ending", "ended", "failed"},
    "running": {"ending", "ended", "failed"},
    "ending": {"ended", "failed"},
    "ended": set(),
    "failed": set(),
    "canceled": set(),
}
# Events that may leave the status as it is (a heartbeat, or a late first frame while ending).
STATUS_KEEPING = (s.SessionHeartbeat, s.SessionFirstFrame)
LEGAL_STATUSES = set(get_args(s.Status))
TERMINAL_STATUSES = {"ended", "failed", "canceled"}

# ── Strategies ──────────────────────────────────────────────────────────────────

WORKERS = ("wrk_a", "wrk_b", "wrk_c")
REASONS: tuple[s.EndReason, ...] = get_args(s.EndReason)
CODES = (s.TRANSPORT_CONNECT_FAILED, s.TRANSPORT_UNAUTHORIZED, s.AVATAR_LOAD_FAILED,
         s.WORKER_LOST, s.INTERNAL)
# Small counter ranges make repeated, advancing and regressing usage all common.
frames = st.integers(min_value=0, max_value=12)
seconds = st.integers(min_value=0, max_value=6)

claims = st.builds(s.Claim, session_id=st.just(SID), now=st.just(T0),
                  worker_id=st.sampled_from(WORKERS))
first_frames = st.builds(s.ReportFirstFrame, session_id=st.just(SID), now=st.just(T0))
usages = st.builds(s.ReportUsage, session_id=st.just(SID), now=st.just(T0), frames=frames,
                   billable_seconds=seconds)
end_requests = st.builds(s.RequestEnd, session_id=st.just(SID), now=st.just(T0),
                         reason=st.sampled_from(REASONS))
finishes = st.builds(s.Finish, session_id=st.just(SID), now=st.just(T0),
                     reason=st.sampled_from(REASONS), frames=frames, billable_seconds=seconds)
failures = st.builds(s.Fail, session_id=st.just(SID), now=st.just(T0),
                     code=st.sampled_from(CODES), message=st.text(max_size=10), frames=frames,
                     billable_seconds=seconds)
# Commands that keep a session alive are drawn more often than the ones that end it...
commands: st.SearchStrategy[s.Command] = st.sampled_from([
    claims, claims, first_frames, first_frames, usages, usages, usages, usages,
    end_requests, finishes, failures, st.just(create_command()),
]).flatmap(lambda strategy: strategy)
# ...and half the runs first walk some way down the happy path, so random commands also
# hit sessions that are starting, running or ending.
progress = st.one_of(
    st.just([]),
    st.tuples(claims).map(list),
    st.tuples(claims, first_frames).map(list),
    st.tuples(claims, first_frames, usages).map(list),
    st.tuples(claims, end_requests).map(list),
    st.tuples(claims, first_frames, usages, end_requests).map(list),
)
sequences = st.one_of(
    st.lists(commands, max_size=25),
    st.tuples(progress, st.lists(commands, max_size=20)).map(lambda parts: parts[0] + parts[1]),
)


@dataclass
class Step:
    command: s.Command
    before: s.Session | None
    events: list[s.Event]
    rejected: Rejected | None
    after: s.Session | None
    # The state after each single event of this step, in order.
    trail: list[s.Session | None] = field(default_factory=list)


@dataclass
class Run:
    steps: list[Step]
    log: list[s.Event]
    state: s.Session | None
    clock: Clock


def run(tail: list[s.Command], clock: Clock | None = None) -> Run:
    """Create the session, then decide each command at the next clock tick, appending
    the events of every command that is not rejected."""
    clock = clock or Clock()
    ids = Ids()
    state: s.Session | None = None
    log: list[s.Event] = []
    steps: list[Step] = []
    for template in [create_command(), *tail]:
        command = msgspec.structs.replace(template, now=clock())
        try:
            events = s.decide(command, state, ids)
        except Rejected as error:
            steps.append(Step(command, state, [], error, state))
            continue
        before, trail = state, []
        for event in events:
            state = s.evolve(state, event)
            trail.append(state)
        log.extend(events)
        steps.append(Step(command, before, events, None, state, trail))
    return Run(steps, log, state, clock)


def states_of(result: Run) -> list[s.Session]:
    """Every state the session passed through, one per event."""
    return [state for step in result.steps for state in step.trail if state is not None]


# ── Properties ──────────────────────────────────────────────────────────────────


@PROPERTY
@given(sequences)
def test_every_reachable_state_has_a_legal_status(tail: list[s.Command]) -> None:
    result = run(tail)
    assert result.state is not None
    for state in states_of(result):
        assert state.status in LEGAL_STATUSES
        assert state.terminal == (state.status in TERMINAL_STATUSES)


@PROPERTY
@given(sequences)
def test_status_only_moves_along_the_allowed_transition_graph(tail: list[s.Command]) -> None:
    result = run(tail)
    previous: s.Status | None = None
    for step in result.steps:
        for event, state in zip(step.events, step.trail, strict=True):
            assert state is not None
            if isinstance(event, s.SessionHeartbeat):
                assert state.status == previous, "a heartbeat never moves the status"
            if state.status == previous:
                assert isinstance(event, STATUS_KEEPING), (previous, event)
            else:
                assert state.status in ALLOWED[previous], (previous, state.status, event)
            previous = state.status


@PROPERTY
@given(sequences)
def test_timestamps_are_set_exactly_when_the_status_calls_for_them(
    tail: list[s.Command],
) -> None:
    for state in states_of(run(tail)):
        claimed = state.worker_id is not None
        assert (state.started_at is not None) == claimed
        if state.status in s.WORKER_OWNED:
            assert claimed
        if state.status in ("created", "queued", "canceled"):
            assert not claimed
        assert (state.ended_at is not None) == (state.status in ("ended", "canceled"))
        assert (state.failed_at is not None) == (state.status == "failed")
        assert (state.failure is not None) == (state.status == "failed")
        if state.status == "running":
            assert state.first_frame_at is not None
        if state.first_frame_at is not None:
            assert claimed
            assert state.status in ("running", "ending", "ended", "failed")
        if state.status in ("ending", "ended"):
            assert state.end_reason is not None
        for stamp in (state.started_at, state.first_frame_at, state.ended_at, state.failed_at):
            assert stamp is None or stamp >= state.created_at


@PROPERTY
@given(sequences)
def test_each_timestamp_is_the_time_of_the_event_that_set_it(tail: list[s.Command]) -> None:
    for step in run(tail).steps:
        for event, state in zip(step.events, step.trail, strict=True):
            assert state is not None
            match event:
                case s.SessionCreated():
                    assert state.created_at == event.at
                case s.SessionStarting():
                    assert (state.started_at, state.worker_id) == (event.at, event.worker_id)
                case s.SessionFirstFrame():
                    assert state.first_frame_at == event.at
                case s.SessionEnded() | s.SessionCanceled():
                    assert state.ended_at == event.at
                case s.SessionFailed():
                    assert state.failed_at == event.at
                    assert state.failure == s.Failure(event.code, event.message)


@PROPERTY
@given(sequences)
def test_an_accepted_command_always_gets_the_session_where_it_asked(
    tail: list[s.Command],
) -> None:
    """No command is silently dropped: unless it was rejected, its goal holds afterwards
    (whether this step reached it or an earlier one already had)."""
    for step in run(tail).steps:
        before, after, command = step.before, step.after, step.command
        if step.rejected is not None:
            continue
        assert after is not None
        match command:
            case s.Create():
                assert after.status != "created"
            case s.Claim(worker_id=worker_id):
                assert after.worker_id == worker_id
                assert after.status in s.WORKER_OWNED
            case s.ReportFirstFrame():
                assert after.first_frame_at is not None or after.terminal
            case s.ReportUsage():
                assert (after.frames, after.billable_seconds) == (
                    command.frames, command.billable_seconds)
            case s.RequestEnd():
                assert after.status in ("ending", "canceled") or after.terminal
            case s.Finish():
                assert after.terminal
                if before is not None and not before.terminal:
                    assert after.status == "ended"
                    assert after.end_reason == (before.end_reason or command.reason)
            case s.Fail():
                assert after.terminal
                if before is not None and not before.terminal:
                    assert after.status == "failed"


@PROPERTY
@given(sequences)
def test_every_event_belongs_to_the_session_and_is_stamped_with_the_command_time(
    tail: list[s.Command],
) -> None:
    result = run(tail)
    for step in result.steps:
        for event in step.events:
            assert (event.session_id, event.org_id) == (SID, ORG)
            assert event.at == step.command.now
    assert len({e.id for e in result.log}) == len(result.log), "event ids must be unique"


@PROPERTY
@given(sequences, st.lists(commands, min_size=1, max_size=10))
def test_once_terminal_no_command_changes_the_state(
    tail: list[s.Command], later: list[s.Command],
) -> None:
    result = run(tail)
    state = result.state
    assert state is not None
    if not state.terminal:
        # Drive it to a terminal state the way the service always can: fail it.
        fail = s.Fail(session_id=SID, now=result.clock(), code=s.INTERNAL, message="stop")
        state = s.fold(s.decide(fail, state, Ids()), state)
        assert state is not None and state.terminal
    for template in later:
        command = msgspec.structs.replace(template, now=result.clock())
        try:
            events = s.decide(command, state, Ids())
        except Rejected:
            continue
        assert events == [], (state.status, command)
    # ...and within every random run, a step that starts terminal ends where it began.
    for step in result.steps:
        if step.before is not None and step.before.terminal:
            assert step.events == []
            assert step.after == step.before


IDEMPOTENT = (s.Create, s.RequestEnd, s.Claim, s.ReportFirstFrame, s.ReportUsage, s.Finish,
              s.Fail)


@PROPERTY
@given(sequences)
def test_deciding_a_command_again_after_applying_its_events_yields_nothing(
    tail: list[s.Command],
) -> None:
    result = run(tail)
    retried = 0
    for step in result.steps:
        if step.events and isinstance(step.command, IDEMPOTENT):
            assert s.decide(step.command, step.after, Ids()) == [], step.command
            # A retry that arrives later is just as harmless.
            retry_at = step.command.now + timedelta(minutes=1)
            later = msgspec.structs.replace(step.command, now=retry_at)
            assert s.decide(later, step.after, Ids()) == [], step.command
            retried += 1
    assert retried >= 1  # Create always produced events


@PROPERTY
@given(sequences)
def test_replaying_the_log_from_scratch_equals_the_live_state(tail: list[s.Command]) -> None:
    result = run(tail)
    assert s.fold(result.log) == result.state
    # Every prefix too: the state after each step is the fold of the log up to it.
    position = 0
    for step in result.steps:
        position += len(step.events)
        assert s.fold(result.log[:position]) == step.after


@PROPERTY
@given(sequences)
def test_replaying_the_stored_json_log_equals_the_live_state(tail: list[s.Command]) -> None:
    result = run(tail)
    decoder = msgspec.json.Decoder(protoface.domain.events.Event)
    stored = [decoder.decode(msgspec.json.encode(e)) for e in result.log]
    assert stored == result.log
    assert s.fold(stored) == result.state  # type: ignore[arg-type]


@PROPERTY
@given(sequences)
def test_usage_counters_never_decrease(tail: list[s.Command]) -> None:
    last = (0, 0)
    for state in states_of(run(tail)):
        assert state.frames >= last[0]
        assert state.billable_seconds >= last[1]
        last = (state.frames, state.billable_seconds)


@PROPERTY
@given(sequences)
def test_a_rejection_is_always_a_conflict_with_a_known_code(tail: list[s.Command]) -> None:
    for step in run(tail).steps:
        if step.rejected is not None:
            assert step.rejected.kind == "conflict"
            assert step.rejected.code in {
                "session_not_claimable", "invalid_session_state", "usage_regressed"}


# ── Storage format ──────────────────────────────────────────────────────────────

ids_ = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=30)
moments = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                               timezone(-timedelta(hours=5, minutes=30))]))
# JSON text cannot carry lone surrogates, so neither can metadata that arrives as JSON.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
metadata_values = st.one_of(
    texts, st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
)
transports = st.one_of(
    st.builds(s.PipecatTransport, video_encoding=st.sampled_from(["jpeg", "rgb24"]),
              audio_sample_rate=st.sampled_from([8_000, 16_000, 24_000, 48_000])),
    st.builds(s.LiveKitTransport, url=texts, room_name=texts, worker_token_sealed=texts,
              worker_identity=texts, audio_source=st.sampled_from(["data_stream", "track"]),
              subscribe_to_identity=st.none() | texts,
              synthetic_audio_if_no_input=st.booleans()),
)
counters = st.integers(min_value=0, max_value=2**40)
envelope = {"id": ids_, "session_id": ids_, "org_id": ids_, "at": moments}
events: st.SearchStrategy[s.Event] = st.one_of(
    st.builds(s.SessionCreated, **envelope, avatar_id=ids_,
              quality=st.sampled_from(get_args(s.Quality)),
              idle_timeout_seconds=st.integers(0, 3_600),
              max_duration_seconds=st.integers(0, 3_600),
              metadata=st.dictionaries(texts, metadata_values, max_size=5),
              transport=transports, api_key_id=st.none() | ids_),
    st.builds(s.SessionQueued, **envelope),
    st.builds(s.SessionStarting, **envelope, worker_id=ids_),
    st.builds(s.SessionFirstFrame, **envelope),
    st.builds(s.SessionHeartbeat, **envelope, frames=counters, billable_seconds=counters),
    st.builds(s.SessionEnding, **envelope, reason=st.sampled_from(REASONS)),
    st.builds(s.SessionEnded, **envelope, reason=st.sampled_from(REASONS), frames=counters,
              billable_seconds=counters),
    st.builds(s.SessionFailed, **envelope, code=st.sampled_from(CODES), message=texts,
              frames=counters, billable_seconds=counters),
    st.builds(s.SessionCanceled, **envelope),
)
DECODER = msgspec.json.Decoder(protoface.domain.events.Event)


@PROPERTY
@given(events)
def test_events_round_trip_through_json_unchanged(event: s.Event) -> None:
    decoded = DECODER.decode(msgspec.json.encode(event))
    assert type(decoded) is type(event)
    assert decoded == event


@PROPERTY
@given(events, st.data())
def test_events_written_before_an_optional_field_existed_decode_with_its_default(
    event: s.Event, data: st.DataObject,
) -> None:
    # Fields declared with a default are the ones that may be absent from older records.
    optional = {f.encode_name: f for f in msgspec.structs.fields(event)
                if f.default is not msgspec.NODEFAULT}
    assume(optional)
    missing = data.draw(st.sets(st.sampled_from(sorted(optional)), min_size=1), label="missing")
    stored = msgspec.to_builtins(event)
    for name in missing:
        del stored[name]
    decoded = DECODER.decode(msgspec.json.encode(stored))
    assert decoded == msgspec.structs.replace(
        event, **{optional[name].name: optional[name].default for name in missing})


@PROPERTY
@given(sequences, st.lists(events, min_size=1, max_size=5))
def test_a_terminal_state_ignores_any_event_that_arrives_after_it(
    tail: list[s.Command], late: list[s.Event],
) -> None:
    result = run(tail)
    state = result.state
    assert state is not None
    if not state.terminal:
        fail = s.Fail(session_id=SID, now=result.clock(), code=s.INTERNAL, message="stop")
        state = s.fold(s.decide(fail, state, Ids()), state)
        assert state is not None and state.terminal
    late = [msgspec.structs.replace(e, session_id=SID, org_id=ORG) for e in late]
    assert s.fold(late, state) == state


def test_an_old_ended_event_without_usage_or_reason_still_decodes() -> None:
    old = (b'{"type":"session.ended","id":"evt_1","session_id":"sess_1","org_id":"org_1",'
           b'"at":"2025-11-02T10:00:00Z"}')
    event = DECODER.decode(old)
    assert isinstance(event, s.SessionEnded)
    assert (event.reason, event.frames, event.billable_seconds) == ("completed", 0, 0)
    assert event.at == T0.replace(year=2025, month=11, day=2, hour=10)


def test_an_old_failed_event_without_usage_still_decodes() -> None:
    old = (b'{"type":"session.failed","id":"evt_1","session_id":"sess_1","org_id":"org_1",'
           b'"at":"2025-11-02T10:00:00Z","code":"worker_lost","message":"gone"}')
    event = DECODER.decode(old)
    assert isinstance(event, s.SessionFailed)
    assert (event.code, event.message, event.frames, event.billable_seconds) == (
        "worker_lost", "gone", 0, 0)


def test_an_old_created_event_without_api_key_or_transport_options_still_decodes() -> None:
    old = (b'{"type":"session.created","id":"evt_1","session_id":"sess_1","org_id":"org_1",'
           b'"at":"2025-11-02T10:00:00Z","avatar_id":"av_stock_001","quality":"lite",'
           b'"idle_timeout_seconds":60,"max_duration_seconds":600,"metadata":{},'
           b'"transport":{"type":"livekit","url":"wss://lk.example","room_name":"r1",'
           b'"worker_token_sealed":"v1.k1.abc"}}')
    event = DECODER.decode(old)
    assert isinstance(event, s.SessionCreated)
    assert event.api_key_id is None
    assert event.transport == s.LiveKitTransport(
        url="wss://lk.example", room_name="r1", worker_token_sealed="v1.k1.abc",
        worker_identity="protoface-worker", audio_source="data_stream",
        subscribe_to_identity=None, synthetic_audio_if_no_input=False)
    state = s.fold([event, DECODER.decode(
        b'{"type":"session.queued","id":"evt_2","session_id":"sess_1","org_id":"org_1",'
        b'"at":"2025-11-02T10:00:00Z"}')])  # type: ignore[list-item]
    assert state is not None and state.status == "queued"


def test_an_old_livekit_transport_without_publish_on_behalf_decodes_to_none() -> None:
    old = (b'{"type":"session.created","id":"evt_1","session_id":"sess_1","org_id":"org_1",'
           b'"at":"2025-11-02T10:00:00Z","avatar_id":"av_stock_001","quality":"lite",'
           b'"idle_timeout_seconds":60,"max_duration_seconds":600,"metadata":{},'
           b'"transport":{"type":"livekit","url":"wss://lk.example","room_name":"r1",'
           b'"worker_token_sealed":"v1.k1.abc","worker_identity":"w",'
           b'"subscribe_to_identity":"agent-1"}}')
    event = DECODER.decode(old)
    assert isinstance(event, s.SessionCreated)
    assert isinstance(event.transport, s.LiveKitTransport)
    assert event.transport.publish_on_behalf is None
    assert event.transport.subscribe_to_identity == "agent-1"


def test_an_old_ending_event_without_a_reason_reads_as_requested() -> None:
    old = (b'{"type":"session.ending","id":"evt_1","session_id":"sess_1","org_id":"org_1",'
           b'"at":"2025-11-02T10:00:00Z"}')
    event = DECODER.decode(old)
    assert isinstance(event, s.SessionEnding)
    assert event.reason == "requested"


def test_an_old_pipecat_transport_with_only_its_type_gets_todays_defaults() -> None:
    transport = msgspec.json.decode(b'{"type":"pipecat"}', type=s.Transport)
    assert transport == s.PipecatTransport(relay_mode="websocket", video_encoding="jpeg",
                                           audio_sample_rate=16_000)


def test_an_event_type_the_log_does_not_know_is_refused_loudly() -> None:
    with pytest.raises(msgspec.ValidationError):
        DECODER.decode(b'{"type":"session.teleported","id":"e","session_id":"s",'
                       b'"org_id":"o","at":"2025-11-02T10:00:00Z"}')
