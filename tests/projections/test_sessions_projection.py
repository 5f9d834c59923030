"""The Session read model, fed from the real event log.

The central property: the model a live Projector keeps while commands are decided
and appended equals the model rebuilt by replaying the log from sequence 1, and the
one a Projector started afterwards catches up to. Then the queries the API relies on:
active counts (admission), pages newest first with cursors, versions for the next
conditional append, and idempotent application.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from protoface.domain import ids
from protoface.domain import session as s
from protoface.domain.errors import Rejected
from protoface.domain.events import Event
from protoface.domain.org import (
    ADMISSION_GRACE,
    OrgCreated,
    OrgEvent,
    SessionAdmitted,
    SessionsAdmitted,
)
from protoface.projections.runner import Projector
from protoface.projections.sessions import Query, SessionsModel
from protoface.streams import subjects
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, Expect, LogUnavailable
from tests.projections import support
from tests.streams.support import (
    Clock,
    create_command,
    creation,
    new_event_id,
    new_org,
    new_session,
)

WORKERS = ("wrk_a", "wrk_b", "wrk_c")
CODES = (s.TRANSPORT_CONNECT_FAILED, s.AVATAR_LOAD_FAILED, s.WORKER_LOST, s.INTERNAL)
REASONS: tuple[s.EndReason, ...] = ("requested", "max_duration", "idle_timeout")


async def rebuild(log: EventLog, until: int) -> SessionsModel:
    return await support.rebuild(log, until, SessionsModel)


# ── Driving commands through the real log ───────────────────────────────────────


@dataclass
class Driver:
    """Decides each command from the live projection and appends it conditionally on
    the session's version, re-deciding after a conflict (as the API does)."""

    log: EventLog
    model: SessionsModel
    projector: Projector
    clock: Clock
    orgs: list[str]
    sessions: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    async def run(self, command: s.Command) -> list[Event]:
        sid = command.session_id
        history = subjects.session_history(sid)
        for _ in range(10):
            state = self.model.sessions.get(sid)
            version = self.model.versions.get(sid, 0)
            try:
                events: list[Event] = list(s.decide(command, state, new_event_id))
            except Rejected as rejected:
                self.outcomes[f"rejected:{rejected.code}"] += 1
                return []
            if not events:
                self.outcomes["no-op"] += 1
                return []
            try:
                seq = await self.log.append(events, Expect(history, version))
            except ConcurrencyConflict:
                self.outcomes["conflict"] += 1
                await self.projector.wait_for(await self.log.version(history))
                continue
            await self.projector.wait_for(seq)
            self.outcomes[str(type(events[-1]).__struct_config__.tag)] += 1
            return events
        raise AssertionError(f"{command!r} kept conflicting")

    def random_command(self, rng: random.Random) -> s.Command:
        now = self.clock()
        if not self.sessions or rng.random() < 0.25:
            sid = new_session(now)
            self.sessions.append(sid)
            return create_command(rng.choice(self.orgs), sid, now)
        # Mostly sessions still in play, sometimes any (finished ones absorb commands).
        active = [x for x in self.sessions
                  if (st := self.model.sessions.get(x)) is None or not st.terminal]
        sid = rng.choice(active if active and rng.random() < 0.8 else self.sessions)
        state = self.model.sessions.get(sid)
        frames = (state.frames if state else 0) + rng.randint(0, 40)
        seconds = (state.billable_seconds if state else 0) + rng.randint(0, 2)
        kind = rng.choices(
            ["claim", "first_frame", "usage", "end", "finish", "fail"],
            weights=[5, 4, 5, 2, 2, 1],
        )[0]
        match kind:
            case "claim":
                return s.Claim(session_id=sid, now=now, worker_id=rng.choice(WORKERS))
            case "first_frame":
                return s.ReportFirstFrame(session_id=sid, now=now)
            case "usage":
                return s.ReportUsage(session_id=sid, now=now, frames=frames,
                                     billable_seconds=seconds)
            case "end":
                return s.RequestEnd(session_id=sid, now=now, reason=rng.choice(REASONS))
            case "finish":
                return s.Finish(session_id=sid, now=now, frames=frames, billable_seconds=seconds)
            case _:
                return s.Fail(session_id=sid, now=now, code=rng.choice(CODES), message="boom",
                              frames=frames, billable_seconds=seconds)

    async def race_claims(self, rng: random.Random) -> None:
        """Two workers claim one queued session at once: one wins, one is refused."""
        queued = [sid for sid in self.sessions
                  if (st := self.model.sessions.get(sid)) and st.status == "queued"]
        if not queued:
            return
        sid = rng.choice(queued)
        now = self.clock()
        results = await asyncio.gather(
            self.run(s.Claim(session_id=sid, now=now, worker_id="wrk_a")),
            self.run(s.Claim(session_id=sid, now=now, worker_id="wrk_b")),
        )
        assert sum(1 for r in results if r) == 1, results


async def check_against_the_log(driver: Driver) -> None:
    log, model = driver.log, driver.model
    folded: dict[str, s.Session] = {}
    for sid in driver.sessions:
        events, version = await log.load(subjects.session_history(sid))
        state = s.fold([e for e in events if not isinstance(e, OrgEvent)])
        assert state is not None
        folded[sid] = state
        assert model.sessions[sid] == state
        assert model.versions[sid] == version
        # A session is claimed at most once, whatever raced.
        assert sum(isinstance(e, s.SessionStarting) for e in events) <= 1
    for org in driver.orgs:
        mine = sorted(sid for sid, st in folded.items() if st.org_id == org)
        assert model.by_org.get(org, []) == mine
        assert model.active_count(org) == sum(not folded[sid].terminal for sid in mine)
        assert model.active_by_org.get(org, set()) == {
            sid for sid in mine if not folded[sid].terminal
        }
        assert model.admission_version.get(org, 0) == await log.version(
            subjects.org_admissions(org)
        )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_live_projection_equals_rebuild_from_the_log(
    event_log: EventLog, seed: int
) -> None:
    rng = random.Random(seed)
    live = SessionsModel()
    projector = Projector(event_log, [live])
    await projector.start()
    driver = Driver(event_log, live, projector, Clock(), orgs=[new_org() for _ in range(3)])
    try:
        await projector.catch_up()
        for step in range(150):
            if step % 15 == 14:
                await driver.race_claims(rng)
            else:
                await driver.run(driver.random_command(rng))
        await check_against_the_log(driver)
    finally:
        await projector.stop()

    # The workload reached the interesting places.
    assert driver.outcomes["session.queued"] >= 10
    assert driver.outcomes["session.starting"] >= 3
    assert driver.outcomes["conflict"] >= 1  # the claim races lost a conditional append
    assert sum(v for k, v in driver.outcomes.items() if k.startswith("rejected:")) >= 1
    assert any(st.terminal for st in live.sessions.values())

    snapshot = live.export()
    cap = live.last_seq
    assert snapshot["last_seq"] == cap

    rebuilt = await rebuild(event_log, cap)
    assert rebuilt.export() == snapshot

    fresh = SessionsModel()
    late = Projector(event_log, [support.UpTo(fresh, cap)])  # type: ignore[list-item]
    await late.start()
    try:
        await late.catch_up()
        await late.wait_for(cap)
    finally:
        await late.stop()
    assert fresh.export() == snapshot


async def test_projector_resumes_from_a_model_that_already_has_a_prefix(
    event_log: EventLog,
) -> None:
    org = new_org()
    for _ in range(3):
        sid = new_session()
        await event_log.append(creation(org, sid), Expect(subjects.session_history(sid), 0))
    middle = await event_log.last_seq()
    for _ in range(3):
        sid = new_session()
        await event_log.append(creation(org, sid), Expect(subjects.session_history(sid), 0))
    end = await event_log.last_seq()

    resumed = await rebuild(event_log, middle)
    projector = Projector(event_log, [support.UpTo(resumed, end)])  # type: ignore[list-item]
    assert projector.last_seq == middle
    await projector.start()
    try:
        await projector.wait_for(end)
    finally:
        await projector.stop()
    assert resumed.export() == (await rebuild(event_log, end)).export()
    assert resumed.active_count(org) == 6


async def test_wait_for_returns_once_the_sequence_is_applied(event_log: EventLog) -> None:
    model = SessionsModel()
    projector = Projector(event_log, [model])
    await projector.start()
    try:
        await projector.catch_up()
        org, sid = new_org(), new_session()
        seq = await event_log.append(
            creation(org, sid), Expect(subjects.session_history(sid), 0)
        )
        await projector.wait_for(seq)
        assert model.last_seq >= seq
        found = model.get(org, sid)
        assert found is not None and found.status == "queued"
        await projector.wait_for(seq - 1)  # already applied: returns at once
        with pytest.raises(LogUnavailable):  # the feed stopped: callers answer 503
            await projector.wait_for(seq + 10_000, timeout=0.2)
    finally:
        await projector.stop()


async def test_admissions_count_until_their_session_appears_or_the_grace_ends(
    event_log: EventLog,
) -> None:
    # An admission holds a slot for its session before the session exists, so two
    # API processes cannot both take the last slot; if the session never comes
    # (its API process died), the slot comes back after the grace period.
    org, sid, ghost = new_org(), new_session(), new_session()
    model = SessionsModel()
    for admitted_sid in (sid, ghost):
        event = SessionAdmitted(id=new_event_id(), org_id=org, at=T0, session_id=admitted_sid)
        seq = await event_log.append([event], Expect(
            subjects.org_admissions(org), model.admission_version.get(org, 0)))
        model.apply(seq, event)
    assert model.active_count(org, T0) == 2
    assert model.admission_version[org] == await event_log.version(subjects.org_admissions(org))
    created = creation(org, sid, T0)
    seq = await event_log.append(created, Expect(subjects.session_history(sid), 0))
    for offset, event in enumerate(created):
        model.apply(seq - len(created) + 1 + offset, event)
    assert model.active_count(org, T0) == 2  # the session now counts instead of its admission
    assert model.active_count(org, T0 + ADMISSION_GRACE) == 1  # the ghost's slot is back


async def test_a_group_admission_holds_a_slot_for_each_of_its_sessions(
    event_log: EventLog,
) -> None:
    # One org.sessions_admitted, stored after an org.session_admitted on the same
    # admissions subject, counts each session it names like a single admission,
    # and a model rebuilt from the log holds the same.
    org, first, *grouped = new_org(), new_session(), new_session(), new_session(), new_session()
    model = SessionsModel()
    single = SessionAdmitted(id=new_event_id(), org_id=org, at=T0, session_id=first)
    many = SessionsAdmitted(id=new_event_id(), org_id=org, at=T0, session_ids=tuple(grouped))
    for event in (single, many):
        seq = await event_log.append([event], Expect(
            subjects.org_admissions(org), model.admission_version.get(org, 0)))
        model.apply(seq, event)
    assert model.active_count(org, T0) == 4
    assert model.admission_version[org] == await event_log.version(subjects.org_admissions(org))
    with pytest.raises(ConcurrencyConflict):  # the group moved the admissions' version on
        await event_log.append([single], Expect(subjects.org_admissions(org), seq - 1))
    created = creation(org, grouped[0], T0)
    seq = await event_log.append(created, Expect(subjects.session_history(grouped[0]), 0))
    for offset, event in enumerate(created):
        model.apply(seq - len(created) + 1 + offset, event)
    assert model.active_count(org, T0) == 4
    assert model.active_count(org, T0 + ADMISSION_GRACE) == 1
    rebuilt = await rebuild(event_log, model.last_seq)
    assert rebuilt.admitted.get(org) == model.admitted.get(org)
    assert rebuilt.admission_version.get(org) == model.admission_version[org]


# ── The model on its own ────────────────────────────────────────────────────────

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Feed:
    """Applies hand-written events to a model with increasing sequences."""

    def __init__(self, model: SessionsModel) -> None:
        self.model = model
        self.seq = 0

    def __call__(self, *events: Event) -> int:
        for event in events:
            self.seq += 1
            self.model.apply(self.seq, event)
        return self.seq

    def create(self, org: str, at: datetime, avatar_id: str = "av_stock_001") -> str:
        sid = ids.new_id(ids.SESSION, at)
        self(*s.decide(create_command(org, sid, at, avatar_id), None, new_event_id))
        return sid

    def event(self, kind: type[s.SessionEvent], org: str, sid: str, **fields: object) -> int:
        event = kind(id=new_event_id(), session_id=sid, org_id=org, at=T0, **fields)
        return self(event)  # type: ignore[arg-type]


def test_active_count_is_the_number_of_non_terminal_sessions_of_the_org() -> None:
    model = SessionsModel()
    feed = Feed(model)
    org, other = new_org(), new_org()
    a, b, c, d, e = (feed.create(org, T0 + timedelta(seconds=i)) for i in range(5))
    feed.create(other, T0)
    assert model.active_count(org) == 5

    feed.event(s.SessionStarting, org, b, worker_id="wrk_a")
    feed.event(s.SessionFirstFrame, org, b)
    feed.event(s.SessionStarting, org, c, worker_id="wrk_a")
    feed.event(s.SessionEnding, org, c)
    assert model.active_count(org) == 5  # starting, running and ending all hold a slot

    feed.event(s.SessionCanceled, org, a)
    feed.event(s.SessionEnded, org, c)
    feed.event(s.SessionFailed, org, d, code=s.INTERNAL, message="x")
    assert model.active_count(org) == 2
    assert model.active_by_org[org] == {b, e}

    # Late events for a terminal session do not give it its slot back.
    feed.event(s.SessionHeartbeat, org, c, frames=10, billable_seconds=1)
    feed.event(s.SessionQueued, org, a)
    assert model.active_count(org) == 2
    assert model.active_count(other) == 1
    assert model.active_count(new_org()) == 0


def test_page_is_newest_first_with_cursor_and_has_more() -> None:
    model = SessionsModel()
    feed = Feed(model)
    org, other = new_org(), new_org()
    made = []
    for i in range(7):
        made.append(feed.create(org, T0 + timedelta(seconds=i)))
        feed.create(other, T0 + timedelta(seconds=i, milliseconds=500))
    newest_first = list(reversed(made))

    page, more = model.page(Query(org_id=org, limit=3))
    assert [x.id for x in page] == newest_first[:3] and more

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, more = model.page(Query(org_id=org, limit=3, starting_after=cursor))
        seen += [x.id for x in page]
        if not more:
            break
        cursor = page[-1].id
    assert seen == newest_first  # every session once, in order, no overlap
    assert [len(model.page(Query(org_id=org, limit=3, starting_after=c))[0])
            for c in (None, newest_first[2], newest_first[5])] == [3, 3, 1]

    # A page that ends exactly at the last session says there is no more.
    page, more = model.page(Query(org_id=org, limit=7))
    assert len(page) == 7 and not more
    page, more = model.page(Query(org_id=org, limit=4, starting_after=newest_first[2]))
    assert [x.id for x in page] == newest_first[3:] and not more
    # After the oldest: nothing.
    assert model.page(Query(org_id=org, starting_after=made[0])) == ([], False)
    # Only the org's own sessions.
    assert all(x.org_id == org for x in model.page(Query(org_id=org, limit=100))[0])
    assert model.page(Query(org_id=new_org())) == ([], False)


def test_page_filters_keep_order_and_cursor() -> None:
    model = SessionsModel()
    feed = Feed(model)
    org = new_org()
    made = [
        feed.create(org, T0 + timedelta(seconds=i),
                    avatar_id="av_stock_002" if i % 2 else "av_stock_001")
        for i in range(8)
    ]
    for sid in (made[1], made[4], made[6]):
        feed.event(s.SessionCanceled, org, sid)

    page, more = model.page(Query(org_id=org, statuses=frozenset({"canceled"}), limit=2))
    assert [x.id for x in page] == [made[6], made[4]] and more
    page, more = model.page(Query(org_id=org, statuses=frozenset({"canceled"}), limit=2,
                                  starting_after=made[4]))
    assert [x.id for x in page] == [made[1]] and not more

    page, _ = model.page(Query(org_id=org, avatar_id="av_stock_002", limit=10))
    assert [x.id for x in page] == [made[7], made[5], made[3], made[1]]

    # created_after is inclusive, created_before exclusive.
    page, _ = model.page(Query(org_id=org, created_after=T0 + timedelta(seconds=2),
                               created_before=T0 + timedelta(seconds=5), limit=10))
    assert [x.id for x in page] == [made[4], made[3], made[2]]


def test_get_is_scoped_to_the_org() -> None:
    model = SessionsModel()
    feed = Feed(model)
    org = new_org()
    sid = feed.create(org, T0)
    found = model.get(org, sid)
    assert found is not None and found.id == sid and found.status == "queued"
    assert model.get(new_org(), sid) is None
    assert model.get(org, new_session()) is None


def test_reapplying_an_applied_sequence_is_a_no_op() -> None:
    model = SessionsModel()
    feed = Feed(model)
    org = new_org()
    sid = feed.create(org, T0)
    seq = feed.event(s.SessionStarting, org, sid, worker_id="wrk_a")
    before = model.export()

    # Re-delivery of the same event, and anything at or below last_seq, changes nothing.
    ending = s.SessionEnding(id=new_event_id(), session_id=sid, org_id=org, at=T0)
    model.apply(seq, ending)
    model.apply(seq - 1, ending)
    model.apply(1, s.SessionCanceled(id=new_event_id(), session_id=sid, org_id=org, at=T0))
    other = new_session(T0)
    for event in creation(org, other, T0):
        model.apply(seq, event)
    assert model.export() == before
    assert model.last_seq == seq


def test_last_seq_is_recorded_for_every_event_including_other_aggregates() -> None:
    model = SessionsModel()
    org = new_org()
    assert model.last_seq == 0
    sid = new_session(T0)
    created, queued = creation(org, sid, T0)
    model.apply(3, created)
    assert model.last_seq == 3 and model.versions[sid] == 3
    model.apply(7, OrgCreated(id=new_event_id(), org_id=org, at=T0, name="n", plan="launch"))
    assert model.last_seq == 7  # not a session event, but applied all the same
    model.apply(9, queued)
    assert model.last_seq == 9 and model.versions[sid] == 9
    assert model.export()["last_seq"] == 9
