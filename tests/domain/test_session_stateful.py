"""A state machine that drives one session with random commands from random workers and
checks the decider against a small model of the specification after every step.

The model below is the lifecycle written as a table of rules, independently of
``domain.session``: for each command it says either which state comes next (the same
state meaning "no events") or which rejection code the command must get.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protoface.domain import session as s
from protoface.domain.errors import Rejected
from tests.domain.support import ORG, SID, Clock, Ids, create_command

WORKERS = ("wrk_a", "wrk_b", "wrk_c")
REASONS: tuple[s.EndReason, ...] = get_args(s.EndReason)
CODES = (s.TRANSPORT_CONNECT_FAILED, s.AVATAR_LOAD_FAILED, s.WORKER_LOST, s.INTERNAL)
OWNED = {"starting", "running", "ending"}
TERMINAL = {"ended", "failed", "canceled"}
# Relative usage: a heartbeat may repeat, advance or (wrongly) regress the counters.
frame_steps = st.integers(min_value=-3, max_value=30)
second_steps = st.integers(min_value=-2, max_value=5)


@dataclass(frozen=True)
class Model:
    """What the specification says the session looks like."""

    status: str
    created_at: datetime
    worker: str | None = None
    started_at: datetime | None = None
    first_frame_at: datetime | None = None
    ended_at: datetime | None = None
    failed_at: datetime | None = None
    failure: tuple[str, str] | None = None
    end_reason: str | None = None
    frames: int = 0
    seconds: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


Expected = Model | str  # the next model, or the code of the rejection


def replace(model: Model, **changes: object) -> Model:
    return dataclasses.replace(model, **changes)  # type: ignore[arg-type]


class SessionLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.ids = Ids()
        self.log: list[s.Event] = []
        self.state: s.Session | None = None
        self.model: Model | None = None
        self.high_water = (0, 0)

    # ── Driving the decider ────────────────────────────────────────────────────

    def now(self) -> datetime:
        return self.clock()

    def check(self, command: s.Command, expected: Expected) -> None:
        """Decide ``command``; it must be rejected exactly when the model says so, and
        otherwise fold to exactly the model's next state."""
        assert self.model is not None
        before_state, before_model = self.state, self.model
        if isinstance(expected, str):
            with pytest.raises(Rejected) as caught:
                s.decide(command, self.state, self.ids)
            assert caught.value.code == expected, (before_model.status, command)
            event(f"{type(command).__name__} rejected: {expected}")
            return
        events = s.decide(command, self.state, self.ids)
        assert (events == []) == (expected == before_model), (before_model.status, command, events)
        for e in events:
            assert (e.session_id, e.org_id, e.at) == (SID, ORG, command.now)
            self.state = s.evolve(self.state, e)
        self.log.extend(events)
        self.model = expected
        for e in events:
            self.check_payload(e, expected)
        if before_model.terminal:
            assert events == [] and self.state == before_state, "terminal states absorb"
        event(f"{type(command).__name__}: {before_model.status} -> {expected.status}")

    @staticmethod
    def check_payload(e: s.Event, m: Model) -> None:
        """What an event carries agrees with the state it leads to (projections read events,
        not states)."""
        match e:
            case s.SessionStarting():
                assert e.worker_id == m.worker
            case s.SessionHeartbeat():
                assert (e.frames, e.billable_seconds) == (m.frames, m.seconds)
            case s.SessionEnding():
                assert e.reason == m.end_reason
            case s.SessionEnded():
                assert (e.reason, e.frames, e.billable_seconds) == (m.end_reason, m.frames,
                                                                    m.seconds)
            case s.SessionFailed():
                assert ((e.code, e.message), e.frames, e.billable_seconds) == (
                    m.failure, m.frames, m.seconds)

    # ── Rules: one per command ─────────────────────────────────────────────────

    @initialize(head_start=st.sampled_from(
        ["none", "claimed", "running", "running_with_usage", "ending_before_first_frame"]),
        worker=st.sampled_from(WORKERS))
    def create(self, head_start: str, worker: str) -> None:
        """Create the session; most runs then let a worker take it some way down the happy
        path (each step checked like any other), so later rules often meet a session that is
        starting, running or ending rather than one that was ended at once."""
        now = self.now()
        self.model = Model(status="created", created_at=now)
        self.check(create_command(now), Model(status="queued", created_at=now))
        if head_start != "none":
            self.claim(worker)
        if head_start in ("running", "running_with_usage"):
            self.first_frame()
        if head_start == "running_with_usage":
            self.heartbeat(25, 1)
        if head_start == "ending_before_first_frame":
            self.request_end("shutdown")

    @rule()
    def create_again(self) -> None:
        assert self.model is not None
        self.check(create_command(self.now()), self.model)

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        m, now = self.model, self.now()
        assert m is not None
        expected: Expected
        if m.status == "queued":
            expected = replace(m, status="starting", worker=worker, started_at=now)
        elif m.status in OWNED and m.worker == worker:
            expected = m
        else:
            expected = "session_not_claimable"
        self.check(s.Claim(session_id=SID, now=now, worker_id=worker), expected)

    @rule()
    def claim_retried_by_its_owner(self) -> None:
        """A worker that already owns the session retries its claim (e.g. after a timeout)."""
        assert self.model is not None
        self.claim(self.model.worker or WORKERS[0])

    @rule()
    def first_frame(self) -> None:
        m, now = self.model, self.now()
        assert m is not None
        expected: Expected
        if m.terminal or m.first_frame_at is not None:
            expected = m
        elif m.status in OWNED:
            expected = replace(m, first_frame_at=now,
                               status="ending" if m.status == "ending" else "running")
        else:
            expected = "invalid_session_state"
        self.check(s.ReportFirstFrame(session_id=SID, now=now), expected)

    @rule(more_frames=frame_steps, more_seconds=second_steps)
    def heartbeat(self, more_frames: int, more_seconds: int) -> None:
        m, now = self.model, self.now()
        assert m is not None
        frames, seconds = m.frames + more_frames, m.seconds + more_seconds
        expected: Expected
        if m.status not in OWNED:
            expected = "invalid_session_state"
        elif frames < m.frames or seconds < m.seconds:
            expected = "usage_regressed"
        else:
            expected = replace(m, frames=frames, seconds=seconds)
        self.check(s.ReportUsage(session_id=SID, now=now, frames=frames,
                                 billable_seconds=seconds), expected)

    @rule()
    def heartbeat_repeated(self) -> None:
        """The same cumulative counters again: a redelivered heartbeat."""
        self.heartbeat(0, 0)

    @rule(reason=st.sampled_from(REASONS))
    def request_end(self, reason: s.EndReason) -> None:
        m, now = self.model, self.now()
        assert m is not None
        expected: Expected = m
        if m.status in ("created", "queued"):
            expected = replace(m, status="canceled", ended_at=now)
        elif m.status in ("starting", "running"):
            expected = replace(m, status="ending", end_reason=reason)
        self.check(s.RequestEnd(session_id=SID, now=now, reason=reason), expected)

    @rule(reason=st.sampled_from(REASONS), more_frames=frame_steps, more_seconds=second_steps)
    def finish(self, reason: s.EndReason, more_frames: int, more_seconds: int) -> None:
        m, now = self.model, self.now()
        assert m is not None
        frames, seconds = m.frames + more_frames, m.seconds + more_seconds
        expected: Expected
        if m.terminal:
            expected = m
        elif m.status in OWNED:
            expected = replace(m, status="ended", ended_at=now,
                               end_reason=m.end_reason or reason,
                               frames=max(m.frames, frames), seconds=max(m.seconds, seconds))
        else:
            expected = "invalid_session_state"
        self.check(s.Finish(session_id=SID, now=now, reason=reason, frames=frames,
                            billable_seconds=seconds), expected)

    @rule(code=st.sampled_from(CODES), message=st.text(max_size=8),
          more_frames=frame_steps, more_seconds=second_steps)
    def fail(self, code: str, message: str, more_frames: int, more_seconds: int) -> None:
        m, now = self.model, self.now()
        assert m is not None
        frames, seconds = m.frames + more_frames, m.seconds + more_seconds
        expected = m if m.terminal else replace(
            m, status="failed", failed_at=now, failure=(code, message),
            frames=max(m.frames, frames), seconds=max(m.seconds, seconds))
        self.check(s.Fail(session_id=SID, now=now, code=code, message=message, frames=frames,
                          billable_seconds=seconds), expected)

    # ── Invariants, checked after every step ───────────────────────────────────

    @invariant()
    def state_matches_the_model(self) -> None:
        st_, m = self.state, self.model
        if m is None:
            return
        assert st_ is not None
        failure = (st_.failure.code, st_.failure.message) if st_.failure else None
        actual = Model(
            status=st_.status, created_at=st_.created_at, worker=st_.worker_id,
            started_at=st_.started_at, first_frame_at=st_.first_frame_at,
            ended_at=st_.ended_at, failed_at=st_.failed_at, failure=failure,
            end_reason=st_.end_reason, frames=st_.frames, seconds=st_.billable_seconds)
        assert actual == m

    @invariant()
    def status_is_legal(self) -> None:
        if self.state is not None:
            assert self.state.status in get_args(s.Status)
            assert self.state.terminal == (self.state.status in TERMINAL)

    @invariant()
    def timestamps_are_set_iff_the_status_requires_them(self) -> None:
        st_ = self.state
        if st_ is None:
            return
        claimed = st_.status in OWNED or (st_.status in ("ended", "failed")
                                          and st_.worker_id is not None)
        assert (st_.started_at is not None) == claimed
        assert (st_.ended_at is not None) == (st_.status in ("ended", "canceled"))
        assert (st_.failed_at is not None) == (st_.status == "failed")
        assert (st_.failure is not None) == (st_.status == "failed")
        if st_.status == "running":
            assert st_.first_frame_at is not None
        if st_.status in ("created", "queued", "canceled"):
            assert st_.first_frame_at is None and st_.started_at is None

    @invariant()
    def usage_is_monotone(self) -> None:
        if self.state is None:
            return
        usage = (self.state.frames, self.state.billable_seconds)
        assert usage[0] >= self.high_water[0] and usage[1] >= self.high_water[1]
        self.high_water = usage

    @invariant()
    def replaying_the_log_reproduces_the_state(self) -> None:
        assert s.fold(self.log) == self.state


SessionLifecycle.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None
)
TestSessionLifecycle = SessionLifecycle.TestCase
