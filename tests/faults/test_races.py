"""Races: end vs claim vs heartbeat vs timeout, decided concurrently against the real log.

Given a queued session, when Hypothesis-chosen rounds of commands from different actors
(two workers claiming, the claim winner's heartbeats and finish, the customer's end,
the supervisor's timeout and worker-lost) run concurrently, each the way its process
runs it (load, decide, append conditional on the version read, re-decide on a
conflict), then the stored history only takes legal transitions, the session is
claimed at most once, and billing counts the largest cumulative report once, never a
sum: the usage projection bills exactly what the session's final event says.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protoface.domain import ids
from protoface.domain import session as s
from protoface.domain.errors import Rejected
from protoface.domain.session import LiveKitTransport
from protoface.projections.usage import UsageModel
from protoface.streams import subjects
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, Expect, Stored

# (status before, event type) pairs the lifecycle allows (domain/session.py's diagram).
LEGAL = {
    (None, "session.created"), ("created", "session.queued"),
    ("created", "session.canceled"), ("queued", "session.canceled"),
    ("queued", "session.starting"),
    # A first frame may still be rendered while the worker drains; the status stays ending.
    *{(w, "session.first_frame") for w in ("starting", "ending")},
    *{(w, "session.heartbeat") for w in ("starting", "running", "ending")},
    *{(w, "session.ending") for w in ("starting", "running")},
    *{(w, "session.ended") for w in ("starting", "running", "ending")},
    *{(w, "session.failed") for w in ("created", "queued", "starting", "running", "ending")},
}

# The lifecycle only moves forward.
RANK = {"created": 0, "queued": 1, "starting": 2, "running": 3, "ending": 4, "ended": 5,
        "failed": 5, "canceled": 5}

ACTIONS = ("claim_a", "claim_b", "heartbeat", "first_frame", "end", "finish", "idle_timeout",
           "worker_lost")


@dataclass
class World:
    session_id: str
    owner: str | None = None
    reported: int = 0  # the owner's cumulative billable seconds
    max_reported: int = 0
    refused: list[str] = field(default_factory=list)
    seen: list[Stored] = field(default_factory=list)  # the session's events, in order


def now() -> datetime:
    return datetime.now(UTC)


def command_for(action: str, world: World) -> s.Command | None:
    sid = world.session_id
    match action:
        case "claim_a" | "claim_b":
            return s.Claim(session_id=sid, now=now(), worker_id=action[-1])
        case "heartbeat" if world.owner:
            world.reported += 7
            return s.ReportUsage(session_id=sid, now=now(), frames=world.reported * 25,
                                 billable_seconds=world.reported)
        case "first_frame" if world.owner:
            return s.ReportFirstFrame(session_id=sid, now=now())
        case "end":
            return s.RequestEnd(session_id=sid, now=now())
        case "finish" if world.owner:
            return s.Finish(session_id=sid, now=now(), frames=world.reported * 25,
                            billable_seconds=world.reported)
        case "idle_timeout":
            return s.RequestEnd(session_id=sid, now=now(), reason="idle_timeout")
        case "worker_lost":
            return s.Fail(session_id=sid, now=now(), code=s.WORKER_LOST, message="lost")
    return None  # a worker action before any worker owns the session


async def transact(log: EventLog, action: str, world: World) -> None:
    """One actor's command, as its process runs it."""
    for _ in range(50):
        command = command_for(action, world)
        if command is None:
            return
        state, version = await read(log, world)
        try:
            decided = s.decide(command, state, lambda: ids.new_id(ids.EVENT))
        except Rejected as refused:
            world.refused.append(refused.code)
            return
        if not decided:
            return
        try:
            await log.append(decided, Expect(subjects.session_history(world.session_id),
                                             version))
        except ConcurrencyConflict:
            if action == "heartbeat":
                world.reported -= 7  # not stored: the next report repeats these seconds
            continue
        if isinstance(command, s.Claim):
            world.owner = command.worker_id
        if isinstance(command, s.ReportUsage | s.Finish):
            world.max_reported = max(world.max_reported, command.billable_seconds)
        return
    raise AssertionError(f"{action} kept conflicting")


async def read(log: EventLog, world: World) -> tuple[s.Session | None, int]:
    """The session and its version, as a process reads it: the version from the log,
    the state from this run's one follower of the session (a projection, in effect)."""
    version = await log.version(subjects.session_history(world.session_id))
    while not world.seen or world.seen[-1].seq < version:
        await asyncio.sleep(0.002)
    return s.fold([x.event for x in world.seen if x.seq <= version]), version  # type: ignore[misc]


async def new_session(log: EventLog) -> str:
    sid = ids.new_id(ids.SESSION)
    create = s.Create(
        session_id=sid, org_id=f"org-race-{uuid.uuid4().hex[:8]}", now=now(),
        avatar_id="av_stock_001", quality="mock", idle_timeout_seconds=30,
        max_duration_seconds=600, metadata={},
        transport=LiveKitTransport(url="wss://x.livekit.cloud", room_name="r",
                                   worker_token_sealed="sealed"),
    )
    events = s.decide(create, None, lambda: ids.new_id(ids.EVENT))
    await log.append(events, Expect(subjects.session_history(sid), 0))
    return sid


def assert_legal(history: list[s.Event]) -> s.Session:
    state: s.Session | None = None
    for event in history:
        kind = type(event).__struct_config__.tag
        before = state.status if state is not None else None
        assert (before, kind) in LEGAL, f"illegal transition {before} → {kind}"
        after = s.evolve(state, event)
        assert after is not None
        assert RANK[after.status] >= RANK[before or "created"], f"{before} → {after.status}"
        state = after
    assert state is not None
    return state


# Claims open every plan; heartbeats are the common case, endings the rare one.
_action = st.one_of(st.sampled_from(("heartbeat", "heartbeat", "heartbeat", "first_frame")),
                    st.sampled_from(ACTIONS))
rounds = st.tuples(st.lists(st.sampled_from(("claim_a", "claim_b")), min_size=1, max_size=2),
                   st.lists(st.lists(_action, min_size=1, max_size=5), min_size=1,
                            max_size=8)).map(lambda p: [p[0], *p[1]])


@pytest.mark.slow
def test_concurrent_commands_never_take_an_illegal_transition_or_double_bill(
    nats_server: object,
) -> None:
    url = nats_server.url  # type: ignore[attr-defined]

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(rounds)
    def race(plan: list[list[str]]) -> None:
        asyncio.run(run_plan(url, plan))

    race()


async def run_plan(url: str, plan: list[list[str]]) -> None:
    log = await EventLog.connect(url)
    try:
        world = World(await new_session(log))

        async def on_event(stored: Stored) -> None:
            world.seen.append(stored)

        stop = await log.follow(1, on_event, subjects.session_history(world.session_id))
        try:
            for concurrent in plan:
                await asyncio.gather(*(transact(log, action, world) for action in concurrent))
            await read(log, world)  # the follower has everything
        finally:
            await stop()
    finally:
        await log.close()
    seqs = list(world.seen)
    history = [stored.event for stored in seqs]
    final = assert_legal(history)  # type: ignore[arg-type]
    assert sum(isinstance(e, s.SessionStarting) for e in history) <= 1
    # Billing: the largest cumulative report, once.
    assert final.billable_seconds == world.max_reported
    usage = UsageModel()
    for stored in seqs:
        usage.apply(stored.seq, stored.event)
    record = usage.records.get(world.session_id)
    assert (record.billable_seconds if record else 0) == final.billable_seconds
