"""The usage ledger, fed from the real event log and from hand-written events.

The central properties: the ledger a live Projector keeps while sessions of every tier
run, orgs change plans and get grants, equals the one rebuilt from sequence 1, and a
snapshot plus the log's tail equals that rebuild. Then what it records: one record per
claimed session, provisional while it runs and final once terminal; credits per month
that count each record once, however often it changed; windows inclusive of their
start and exclusive of their end.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import msgspec

from protoface.domain import billing
from protoface.domain import session as s
from protoface.domain.events import Event
from protoface.domain.org import CreditsGranted, OrgCreated, PlanChanged
from protoface.projections import snapshots
from protoface.projections.runner import Projector
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect
from protoface.streams.snapshots import SnapshotStore
from tests.projections import support
from tests.projections.test_sessions_projection import Driver
from tests.streams.support import Clock, create_command, new_event_id, new_org, new_session

QUALITIES: tuple[s.Quality, ...] = ("mock", "lite", "standard", "pro")
# Two minutes before a month ends: the workload straddles two calendar months.
MONTH_END = datetime(2026, 1, 31, 23, 58, 0, tzinfo=UTC)


async def rebuild(log: EventLog, until: int) -> UsageModel:
    return await support.rebuild(log, until, UsageModel)


class BillingDriver(Driver):
    """The session workload of the session projection's tests, in every quality tier."""

    def random_command(self, rng: random.Random) -> s.Command:
        command = super().random_command(rng)
        if isinstance(command, s.Create):
            command = msgspec.structs.replace(command, quality=rng.choice(QUALITIES))
        return command


async def org_event(log: EventLog, event: OrgCreated | PlanChanged | CreditsGranted) -> int:
    history = subjects.org_history(event.org_id)
    return await log.append([event], Expect(history, await log.version(history)))


# ── Against the real log ────────────────────────────────────────────────────────


async def test_live_ledger_equals_a_rebuild_from_the_log_and_the_log_itself(
    event_log: EventLog,
) -> None:
    rng = random.Random(7)
    sessions, usage = SessionsModel(), UsageModel()
    projector = Projector(event_log, [sessions, usage])
    await projector.start()
    clock = Clock(MONTH_END)
    driver = BillingDriver(event_log, sessions, projector, clock,
                           orgs=[new_org() for _ in range(3)])
    try:
        await projector.catch_up()
        for org, plan in zip(driver.orgs, ("free", "starter", "launch"), strict=True):
            await org_event(event_log, OrgCreated(id=new_event_id(), org_id=org, at=clock(),
                                                  name=org, plan=plan))
        for step in range(160):
            org = rng.choice(driver.orgs)
            if step % 20 == 5:
                await org_event(event_log, CreditsGranted(
                    id=new_event_id(), org_id=org, at=clock(), credits=rng.randint(1, 50)))
            elif step % 40 == 11:
                await org_event(event_log, PlanChanged(
                    id=new_event_id(), org_id=org, at=clock(), plan=rng.choice(["free", "scale"])))
            else:
                await driver.run(driver.random_command(rng))
        await projector.wait_for(await event_log.last_seq())
    finally:
        await projector.stop()

    # Every claimed session has exactly the record its own history folds into.
    months: set[str] = set()
    for sid in driver.sessions:
        events, _ = await event_log.load(subjects.session_history(sid))
        state = s.fold(events)  # type: ignore[arg-type]
        assert state is not None
        expected = billing.usage_record(state)
        assert usage.records.get(sid) == expected
        if expected is not None:
            months.add(expected.month)
    assert months == {"2026-01", "2026-02"}  # the workload crossed a month boundary
    assert any(r.final for r in usage.records.values())
    assert {r.quality for r in usage.records.values() if r.org_id in driver.orgs} == set(
        QUALITIES)
    for org in driver.orgs:
        by_month: defaultdict[str, int] = defaultdict(int)
        for r in usage.records.values():
            if r.org_id == org:
                by_month[r.month] += r.credits_milli
        assert {m: v for m, v in usage.used.get(org, {}).items() if v} == {
            m: v for m, v in by_month.items() if v}

    cap = usage.last_seq
    assert (await rebuild(event_log, cap)).export() == usage.export()

    fresh = UsageModel()
    late = Projector(event_log, [support.UpTo(fresh, cap)])  # type: ignore[list-item]
    await late.start()
    try:
        await late.wait_for(cap)
    finally:
        await late.stop()
    assert fresh.export() == usage.export()


async def test_a_restored_snapshot_plus_the_tail_equals_a_rebuild(event_log: EventLog) -> None:
    store = await SnapshotStore.open(event_log)
    org = new_org()
    await org_event(event_log, OrgCreated(id=new_event_id(), org_id=org, at=T0, name=org,
                                          plan="starter"))
    first = await run_session(event_log, org, "pro", 61)
    live = await rebuild(event_log, await event_log.last_seq())
    await snapshots.save(store, live)
    later = await run_session(event_log, org, "lite", 125)  # what the snapshot has not seen

    restored = await snapshots.restore(store, UsageModel)
    assert restored.last_seq == live.last_seq and later not in restored.records
    projector = Projector(event_log, [restored])
    await projector.start()
    try:
        await projector.catch_up()
    finally:
        await projector.stop()
    assert restored.export() == (await rebuild(event_log, restored.last_seq)).export()
    assert restored.records[first].credits_milli == 4_000
    assert restored.records[later].credits_milli == 1_500
    assert restored.credits(org, billing.month_of(T0)).used == 5_500


async def run_session(log: EventLog, org: str, quality: s.Quality, seconds: int) -> str:
    """A session from creation to ``ended`` after ``seconds`` billable seconds."""
    sid = new_session(T0)
    command = msgspec.structs.replace(create_command(org, sid, T0), quality=quality)
    history = subjects.session_history(sid)
    seq = await log.append(s.decide(command, None, new_event_id), Expect(history, 0))
    seq = await log.append([s.SessionStarting(id=new_event_id(), session_id=sid, org_id=org,
                                              at=T0, worker_id="wrk_a")], Expect(history, seq))
    await log.append([s.SessionEnded(id=new_event_id(), session_id=sid, org_id=org,
                                     at=T0 + timedelta(seconds=seconds),
                                     billable_seconds=seconds)], Expect(history, seq))
    return sid


# ── The model on its own ────────────────────────────────────────────────────────

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Feed:
    """Applies hand-written events with increasing sequences."""

    def __init__(self, model: UsageModel) -> None:
        self.model = model
        self.seq = 0

    def __call__(self, *events: Event) -> None:
        for event in events:
            self.seq += 1
            self.model.apply(self.seq, event)

    def session(self, org: str, quality: s.Quality = "standard", at: datetime = T0) -> str:
        sid = new_session(at)
        command = msgspec.structs.replace(create_command(org, sid, at), quality=quality)
        self(*s.decide(command, None, new_event_id))
        return sid

    def event(self, kind: type[s.SessionEvent], org: str, sid: str, at: datetime = T0,
              **fields: object) -> None:
        self(kind(id=new_event_id(), session_id=sid, org_id=org, at=at, **fields))  # type: ignore[arg-type]

    def run(self, org: str, quality: s.Quality, seconds: int, at: datetime = T0) -> str:
        sid = self.session(org, quality, at)
        self.event(s.SessionStarting, org, sid, at, worker_id="wrk_a")
        self.event(s.SessionFirstFrame, org, sid, at)
        self.event(s.SessionEnded, org, sid, at + timedelta(seconds=seconds),
                   billable_seconds=seconds)
        return sid


def test_a_session_is_provisional_while_it_runs_and_final_once_it_ends() -> None:
    model, org = UsageModel(), new_org()
    feed = Feed(model)
    sid = feed.session(org, "pro")
    assert sid not in model.records  # nothing is billable before a worker claims it
    feed.event(s.SessionStarting, org, sid, worker_id="wrk_a")
    feed.event(s.SessionFirstFrame, org, sid)
    feed.event(s.SessionHeartbeat, org, sid, frames=750, billable_seconds=30)
    running = model.records[sid]
    assert (running.final, running.minutes, running.credits_milli) == (False, 1, 2_000)
    assert [r.session_id for r in model.running()] == [sid]

    feed.event(s.SessionHeartbeat, org, sid, frames=1_525, billable_seconds=61)
    feed.event(s.SessionEnded, org, sid, billable_seconds=62)
    final = model.records[sid]
    assert (final.final, final.billable_seconds, final.minutes, final.credits_milli) == (
        True, 62, 2, 4_000)
    assert list(model.running()) == [] and sid not in model.open
    # Counted once, with its latest figures, however often the record changed.
    assert model.used[org] == {"2026-03": 4_000}

    # A late heartbeat after the end changes nothing.
    feed.event(s.SessionHeartbeat, org, sid, frames=9_999, billable_seconds=400)
    assert model.records[sid] == final and model.used[org] == {"2026-03": 4_000}


def test_sessions_that_never_started_leave_no_record_and_no_state() -> None:
    model, org = UsageModel(), new_org()
    feed = Feed(model)
    sid = feed.session(org)
    assert sid in model.open
    feed.event(s.SessionCanceled, org, sid)
    assert sid not in model.open and sid not in model.records and org not in model.used


def test_a_window_includes_its_start_and_excludes_its_end() -> None:
    model, org, other = UsageModel(), new_org(), new_org()
    feed = Feed(model)
    at_start = feed.run(org, "pro", 90, T0)
    feed.run(org, "lite", 30, T0 + timedelta(minutes=5))
    feed.run(org, "mock", 0, T0 + timedelta(minutes=6))  # started, never billed
    feed.run(org, "standard", 45, T0 + timedelta(hours=1))  # at the end: excluded
    feed.run(other, "standard", 600, T0)

    summary = model.summary(org, T0, T0 + timedelta(hours=1))
    assert (summary.billable_seconds, summary.sessions) == (120, 2)
    assert summary.by_quality == {"pro": 90, "lite": 30}
    assert [r.session_id for r in model.in_window(org, T0, T0 + timedelta(seconds=1))] == [
        at_start]
    assert model.summary(org, T0 - timedelta(days=1), T0).sessions == 0


def test_credits_count_the_plan_its_changes_and_grants() -> None:
    model, org = UsageModel(), new_org()
    feed = Feed(model)
    feed(OrgCreated(id=new_event_id(), org_id=org, at=T0, name="n", plan="free"))
    feed.run(org, "standard", 600)  # 10 credits
    feed(CreditsGranted(id=new_event_id(), org_id=org, at=T0, credits=5))
    credits = model.credits(org, "2026-03")
    assert (credits.plan, credits.included, credits.granted, credits.used) == (
        "free", 20_000, 5_000, 10_000)
    assert credits.balance == 15_000

    feed(PlanChanged(id=new_event_id(), org_id=org, at=T0 + timedelta(days=2), plan="starter"))
    assert model.credits(org, "2026-03").included == 600_000
    assert model.credits(org, "2026-02").included == 0  # before the org existed: no plan


def test_reapplying_an_applied_sequence_is_a_no_op() -> None:
    model, org = UsageModel(), new_org()
    feed = Feed(model)
    sid = feed.run(org, "standard", 61)
    before = model.export()
    model.apply(feed.seq, s.SessionEnded(id=new_event_id(), session_id=sid, org_id=org, at=T0,
                                         billable_seconds=900))
    model.apply(1, CreditsGranted(id=new_event_id(), org_id=org, at=T0, credits=100))
    assert model.export() == before
