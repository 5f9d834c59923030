"""The audit tooling: the log exported to DuckDB, the report, and rebuild-equals-live.

Sessions of several outcomes are decided by the domain and appended as the system
appends them, on the shared event log. The DuckDB ``sessions`` and ``usage`` views
must equal what ``SessionsModel`` and ``UsageModel`` fold from the same log (one
fold in Python, one in SQL: this keeps them the same), and ``protoface audit
verify`` must pass on true snapshots and fail on a tampered one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from protoface.api.config import Settings, load_keyring
from protoface.api.platform.orgs import create_key, grant_credits
from protoface.api.services import Services
from protoface.domain import org as o
from protoface.domain import session as s
from protoface.domain import webhook as w
from protoface.domain.events import Event
from protoface.projections import audit, audit_parts, snapshots
from protoface.projections.orgs import OrgsModel
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.projections.verify import differences, verify, verify_live
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect, RawBatch, encode
from protoface.streams.server import EmbeddedNats, free_port
from protoface.streams.snapshots import SnapshotStore
from tests.streams.support import new_event_id, new_session

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


@dataclass
class Org:
    """Drives one org's sessions through the domain's decisions into the real log."""

    log: EventLog
    org_id: str
    states: dict[str, s.Session] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    appended: int = 0

    async def do(self, command: s.Command) -> None:
        sid = command.session_id
        events = s.decide(command, self.states.get(sid), new_event_id)
        if not events:
            return
        seq = await self.log.append(
            events, Expect(subjects.session_history(sid), self.versions.get(sid, 0)))
        self.versions[sid] = seq
        self.appended += len(events)
        state = s.fold(list(events), self.states.get(sid))
        assert state is not None
        self.states[sid] = state

    async def session(
        self, *, quality: s.Quality = "standard", at: datetime = T0,
        first_frame_ms: float | None = None, seconds: int = 0, end: str | None = None,
        code: str = s.WORKER_LOST,
    ) -> str:
        """A session created at ``at``: claimed when ``first_frame_ms`` is given, then
        ``seconds`` billed, then ``end``: requested | finished | failed | canceled | None."""
        sid = new_session(at)
        await self.do(s.Create(
            session_id=sid, org_id=self.org_id, now=at, avatar_id="av_stock_001",
            quality=quality, idle_timeout_seconds=30, max_duration_seconds=600,
            metadata={"case": "audit"}, transport=s.PipecatTransport()))
        if end == "canceled":
            await self.do(s.RequestEnd(session_id=sid, now=at + ms(50)))
            return sid
        if first_frame_ms is None:
            return sid
        await self.do(s.Claim(session_id=sid, now=at + ms(5), worker_id="wrk_audit"))
        await self.do(s.ReportFirstFrame(session_id=sid, now=at + ms(first_frame_ms)))
        now = at + ms(first_frame_ms) + timedelta(seconds=seconds)
        if seconds:
            await self.do(s.ReportUsage(session_id=sid, now=now, frames=seconds * 25,
                                        billable_seconds=seconds))
        if end == "requested":
            await self.do(s.RequestEnd(session_id=sid, now=now, reason="requested"))
            await self.do(s.Finish(session_id=sid, now=now + ms(40), frames=seconds * 25,
                                   billable_seconds=seconds))
        elif end == "ending":
            await self.do(s.RequestEnd(session_id=sid, now=now, reason="idle_timeout"))
        elif end == "finished":
            await self.do(s.Finish(session_id=sid, now=now, reason="max_duration",
                                   frames=seconds * 25 + 10, billable_seconds=seconds + 1))
        elif end == "failed":
            await self.do(s.Fail(session_id=sid, now=now, code=code, message="no heartbeat",
                                 frames=seconds * 25, billable_seconds=seconds))
        return sid


async def new_org(log: EventLog, plan: str = "launch") -> Org:
    issued = await create_key(log, f"audit-{uuid.uuid4().hex[:10]}", plan)
    return Org(log, issued.org_id)


@dataclass
class Outcomes:
    org: Org
    ids: dict[str, str]


@pytest.fixture
async def outcomes(event_log: EventLog) -> Outcomes:
    """One org, one session per outcome; first frames 100/200/300/400/500 ms after creation."""
    org = await new_org(event_log)
    ids = {
        "queued": await org.session(),
        "canceled": await org.session(end="canceled"),
        "running": await org.session(quality="lite", first_frame_ms=100, seconds=30),
        "ending": await org.session(first_frame_ms=200, seconds=5, end="ending"),
        "ended": await org.session(quality="pro", first_frame_ms=300, seconds=61,
                                   end="requested"),
        "finished": await org.session(quality="mock", first_frame_ms=400, seconds=119,
                                      end="finished"),
        "failed": await org.session(quality="lite", first_frame_ms=500, seconds=30,
                                    end="failed"),
    }
    return Outcomes(org, ids)


async def exported(log: EventLog) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    await audit.export(log, con)
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> list[dict[str, object]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def epoch_us(at: datetime | None) -> int | None:
    return None if at is None else round(at.timestamp() * 1_000_000)


# Timestamps leave DuckDB as epoch microseconds (fetching TIMESTAMPTZ needs pytz).
SESSION_COLUMNS = """session_id, org_id, avatar_id, quality, status, worker_id, failure_code,
    failure_message, end_reason, frames, billable_seconds, version, transport,
    epoch_us(created_at) AS created_at, epoch_us(started_at) AS started_at,
    epoch_us(first_frame_at) AS first_frame_at, epoch_us(ended_at) AS ended_at,
    epoch_us(failed_at) AS failed_at"""


def as_row(model: SessionsModel, state: s.Session) -> dict[str, object]:
    """What the ``sessions`` view must say about ``state`` (the domain's fold)."""
    return {
        "session_id": state.id, "org_id": state.org_id, "avatar_id": state.avatar_id,
        "quality": state.quality, "status": state.status, "worker_id": state.worker_id,
        "failure_code": state.failure.code if state.failure else None,
        "failure_message": state.failure.message if state.failure else None,
        "end_reason": state.end_reason, "frames": state.frames,
        "billable_seconds": state.billable_seconds, "version": model.versions[state.id],
        "transport": type(state.transport).__struct_config__.tag,
        "created_at": epoch_us(state.created_at), "started_at": epoch_us(state.started_at),
        "first_frame_at": epoch_us(state.first_frame_at), "ended_at": epoch_us(state.ended_at),
        "failed_at": epoch_us(state.failed_at),
    }


@dataclass
class Models:
    """Every snapshotted model kind, rebuilt from sequence 1."""

    by_kind: dict[type, Any]

    @property
    def sessions(self) -> SessionsModel:
        return self.by_kind[SessionsModel]  # type: ignore[no-any-return]

    @property
    def orgs(self) -> OrgsModel:
        return self.by_kind[OrgsModel]  # type: ignore[no-any-return]

    @property
    def usage(self) -> UsageModel:
        return self.by_kind[UsageModel]  # type: ignore[no-any-return]


async def rebuilt(log: EventLog, until: int) -> Models:
    models = Models({kind: kind() for kind in snapshots.NAMES})
    async for stored in log.replay(1, until=until):
        for model in models.by_kind.values():
            model.apply(stored.seq, stored.event)
    return models


async def assert_views_equal_the_models(log: EventLog, con: duckdb.DuckDBPyConnection) -> int:
    """The ``sessions`` and ``usage`` views equal the models folded from the same log."""
    found = con.execute("SELECT max(seq) FROM events").fetchone()
    assert found is not None
    models = await rebuilt(log, found[0])
    sessions, usage = models.sessions, models.usage
    view = {r["session_id"]: r for r in rows(con, f"SELECT {SESSION_COLUMNS} FROM sessions")}
    assert view == {sid: as_row(sessions, st) for sid, st in sessions.sessions.items()}
    billed = {r["session_id"]: r for r in rows(
        con, "SELECT session_id, org_id, quality, billable_seconds, minutes, credits_milli, "
             "final, month, epoch_us(started_at) AS started_at FROM usage")}
    assert billed == {
        sid: {"session_id": sid, "org_id": r.org_id, "quality": r.quality,
              "billable_seconds": r.billable_seconds, "minutes": r.minutes,
              "credits_milli": r.credits_milli, "final": r.final, "month": r.month,
              "started_at": epoch_us(r.started_at)}
        for sid, r in usage.records.items()
    }
    return len(view)


# ── export: the events table ────────────────────────────────────────────────────


async def test_every_event_is_a_row_with_its_sequence_typed_fields_and_stored_json(
    event_log: EventLog, outcomes: Outcomes
) -> None:
    con = await exported(event_log)
    org = outcomes.org.org_id
    table = rows(con, 'SELECT seq, type, epoch_us("at") AS at, id, org_id, session_id, quality, '
                      "worker_id, reason, code, frames, billable_seconds, plan, data "
                      "FROM events WHERE org_id = ? ORDER BY seq", org)
    stored: list[tuple[int, Event]] = [
        (x.seq, x.event) async for x in event_log.replay(1, subject=f"events.*.{org}.>")]
    assert [r["seq"] for r in table] == [seq for seq, _ in stored]
    for row, (_, event) in zip(table, stored, strict=True):
        assert json.loads(str(row["data"])) == msgspec.to_builtins(event)
        assert row["type"] == type(event).__struct_config__.tag
        assert row["at"] == epoch_us(event.at)
        assert row["id"] == event.id
    # The org's own events: its creation and its key (these sessions were decided straight
    # from the domain, without admissions); they name no session.
    kinds = [r["type"] for r in table if str(r["type"]).startswith("org.")]
    assert kinds == ["org.created", "org.api_key_created"]
    assert all(r["session_id"] is None for r in table if str(r["type"]).startswith("org."))
    assert next(r for r in table if r["type"] == "org.created")["plan"] == "launch"
    session_rows = [r for r in table if str(r["type"]).startswith("session.")]
    assert len(session_rows) == outcomes.org.appended

    def one(kind: str, sid: str) -> dict[str, object]:
        return next(r for r in session_rows if r["type"] == kind and r["session_id"] == sid)

    ids = outcomes.ids
    assert one("session.created", ids["ended"])["quality"] == "pro"
    assert one("session.starting", ids["ended"])["worker_id"] == "wrk_audit"
    assert one("session.heartbeat", ids["running"])["frames"] == 750
    assert one("session.heartbeat", ids["running"])["billable_seconds"] == 30
    assert one("session.ending", ids["ending"])["reason"] == "idle_timeout"
    assert one("session.ended", ids["finished"])["reason"] == "max_duration"
    assert one("session.failed", ids["failed"])["code"] == s.WORKER_LOST
    assert one("session.failed", ids["failed"])["billable_seconds"] == 30


async def test_the_export_holds_the_whole_log_in_order(event_log: EventLog) -> None:
    con = await exported(event_log)
    end = await event_log.last_seq()
    count, first, last, distinct = con.execute(
        "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM events").fetchone() or ()
    assert (count, first, last, distinct) == (end, 1, end, end)  # the log has no gaps
    meta = con.execute("SELECT last_seq, events FROM audit_export").fetchone()
    assert meta == (end, end)


# ── export: read by several processes ───────────────────────────────────────────


def test_the_log_splits_into_ranges_without_gap_or_overlap() -> None:
    for first, last, readers in [(1, 10, 3), (1, 1_000_000, 2), (7, 9, 5), (4, 4, 2),
                                 (1, 17, 1), (1, 12, 4)]:
        ranges = audit_parts.split(first, last, readers)
        assert [q for a, b in ranges for q in range(a, b + 1)] == list(range(first, last + 1))
        assert len(ranges) == min(readers, last - first + 1)
        sizes = [b - a + 1 for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1
    assert audit_parts.split(5, 4, 3) == []  # an empty log: nothing to read


def test_by_default_one_reader_per_core_but_not_for_a_small_log() -> None:
    assert audit_parts.readers_for(50) == 1
    assert audit_parts.readers_for(0) == 1
    cores = min(os.cpu_count() or 1, 8)
    assert audit_parts.readers_for(100 * audit_parts.MIN_EVENTS_PER_READER) == cores


def table_texts(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view, every value as text, rows sorted (``events`` by ``seq``);
    the export's own time left out."""
    names = [n for (n,) in con.execute(
        "SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    assert {"events", "sessions", "usage", "orgs", "deliveries", "tiers"} <= set(names)
    texts = {}
    for name in names:
        order = " ORDER BY events.seq" if name == "events" else " ORDER BY ALL"
        columns = "* EXCLUDE (exported_at)" if name == "audit_export" else "*"
        texts[name] = con.execute(
            f'SELECT CAST(COLUMNS({columns}) AS VARCHAR) FROM "{name}"{order}').fetchall()
    return texts


@pytest.fixture
async def own_log(tmp_path: Path) -> AsyncIterator[EventLog]:
    """A log of this test's own, so where its sessions' events lie is known."""
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "jetstream").start()
    log = await EventLog.connect(server.url)
    try:
        yield log
    finally:
        await log.close()
        server.stop()


async def test_several_readers_export_the_same_as_one_row_for_row(own_log: EventLog) -> None:
    """Given sessions of every outcome around one long session at the log's middle,
    when two and three reader processes export it, then every table and view equals
    the one-reader export's, and a range boundary fell inside that session."""
    org = await new_org(own_log)
    await org.session(end="canceled")
    await org.session(quality="lite", first_frame_ms=100, seconds=30, end="failed")
    long = await org.session(quality="pro", first_frame_ms=300, seconds=5)
    for beat in range(2, 60):  # a heartbeat every 5 s: the session's events fill the middle
        await org.do(s.ReportUsage(session_id=long, now=T0 + timedelta(seconds=5 * beat),
                                   frames=125 * beat, billable_seconds=5 * beat))
    await org.session(quality="lite", first_frame_ms=150, seconds=61, end="requested")
    await org.session()
    end = await own_log.last_seq()

    one = duckdb.connect()
    alone = await audit.export(own_log, one, readers=1)
    assert (alone.readers, alone.events, alone.reader_cpu_seconds) == (1, end, 0.0)
    expected = table_texts(one)
    assert [int(seq) for (seq, *_) in expected["events"]] == list(range(1, end + 1))
    session_of = dict(one.execute("SELECT seq, session_id FROM events").fetchall())
    for readers in (2, 3):
        seen: list[tuple[int, int]] = []
        con = duckdb.connect()
        done = await audit.export(own_log, con, readers=readers,
                                  progress=lambda n, total, seen=seen: seen.append((n, total)))
        assert (done.readers, done.events, done.last_seq) == (readers, end, end)
        assert done.reader_cpu_seconds > 0
        assert table_texts(con) == expected
        assert seen[0] == (0, end) and seen[-1] == (end, end)
        assert [n for n, _ in seen] == sorted(n for n, _ in seen)
    boundaries = [b for a, b in audit_parts.split(1, end, 2)][:-1]
    assert any(session_of[b] == session_of[b + 1] == long for b in boundaries)


async def test_a_log_smaller_than_the_readers_gets_one_reader_per_event(
    own_log: EventLog,
) -> None:
    org = await new_org(own_log)
    await org.session(first_frame_ms=100, seconds=5, end="requested")
    one, many = duckdb.connect(), duckdb.connect()
    await audit.export(own_log, one, until=3, readers=1)
    done = await audit.export(own_log, many, until=3, readers=5)
    assert (done.readers, done.events, done.last_seq) == (3, 3, 3)
    assert table_texts(many) == table_texts(one)
    assert len(table_texts(many)["events"]) == 3


async def test_a_reader_that_fails_fails_the_read_with_its_error(
    own_log: EventLog, tmp_path: Path,
) -> None:
    org = await new_org(own_log)
    await org.session(first_frame_ms=100, seconds=5, end="requested")
    parts = [audit_parts.Part(1, 2, tmp_path / "one.tsv"),
             audit_parts.Part(3, 4, tmp_path / "missing" / "two.tsv")]
    with pytest.raises(RuntimeError, match=r"(?s)reader of 3\.\.4 exited with 1:.*FileNotFound"):
        await audit_parts.read_in_processes(own_log.url, parts)


async def test_an_empty_log_exports_empty_tables(own_log: EventLog) -> None:
    con = duckdb.connect()
    done = await audit.export(own_log, con, readers=2)
    assert (done.events, done.last_seq) == (0, 0)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


# ── export: the views ───────────────────────────────────────────────────────────


async def test_sessions_view_has_each_sessions_final_state(
    event_log: EventLog, outcomes: Outcomes
) -> None:
    con = await exported(event_log)
    ids = outcomes.ids
    view = {r["session_id"]: r for r in rows(
        con, "SELECT session_id, status, quality, failure_code, end_reason, frames, "
             "billable_seconds, time_to_first_frame_ms, worker_id, "
             "epoch_us(ended_at) AS ended_at, epoch_us(failed_at) AS failed_at "
             "FROM sessions WHERE org_id = ?", outcomes.org.org_id)}
    assert set(view) == set(ids.values())
    by_outcome = {name: view[sid] for name, sid in ids.items()}
    assert {k: v["status"] for k, v in by_outcome.items()} == {
        "queued": "queued", "canceled": "canceled", "running": "running", "ending": "ending",
        "ended": "ended", "finished": "ended", "failed": "failed",
    }
    assert {k: v["time_to_first_frame_ms"] for k, v in by_outcome.items()} == {
        "queued": None, "canceled": None, "running": 100.0, "ending": 200.0, "ended": 300.0,
        "finished": 400.0, "failed": 500.0,
    }
    assert by_outcome["failed"]["failure_code"] == s.WORKER_LOST
    assert by_outcome["failed"]["failed_at"] is not None
    assert by_outcome["failed"]["ended_at"] is None
    assert by_outcome["canceled"]["ended_at"] is not None
    assert by_outcome["ended"]["end_reason"] == "requested"
    assert by_outcome["finished"]["end_reason"] == "max_duration"
    assert by_outcome["ending"]["end_reason"] == "idle_timeout"
    # Finish reported more than the last heartbeat: the larger figures stand.
    assert (by_outcome["finished"]["frames"], by_outcome["finished"]["billable_seconds"]) == (
        119 * 25 + 10, 120)
    assert by_outcome["queued"]["worker_id"] is None
    assert by_outcome["running"]["worker_id"] == "wrk_audit"
    await assert_views_equal_the_models(event_log, con)


async def test_usage_view_bills_minutes_rounded_up_times_the_tier(
    event_log: EventLog, outcomes: Outcomes
) -> None:
    con = await exported(event_log)
    usage = {r["session_id"]: r for r in rows(
        con, "SELECT session_id, billable_seconds, minutes, multiplier, credits, final "
             "FROM usage WHERE org_id = ?", outcomes.org.org_id)}
    got = {name: usage.get(sid) for name, sid in outcomes.ids.items()}
    assert got["queued"] is None and got["canceled"] is None  # never claimed: nothing billed

    def figures(name: str) -> tuple[object, ...]:
        row = got[name]
        assert row is not None
        return (row["billable_seconds"], row["minutes"], float(str(row["multiplier"])),
                float(str(row["credits"])), row["final"])

    assert figures("running") == (30, 1, 0.5, 0.5, False)  # lite
    assert figures("ending") == (5, 1, 1.0, 1.0, False)  # standard
    assert figures("ended") == (61, 2, 2.0, 4.0, True)  # pro: 61 s is 2 minutes
    assert figures("finished") == (120, 2, 1.0, 2.0, True)  # mock bills as standard
    assert figures("failed") == (30, 1, 0.5, 0.5, True)


async def test_views_equal_the_models_over_random_lifecycles(event_log: EventLog) -> None:
    """Random commands (as the API, workers and supervisor send them) on a few sessions."""
    rng = random.Random(5)
    org = await new_org(event_log)
    clock = T0
    sids: list[str] = []
    for _ in range(150):
        clock += ms(rng.randint(1, 3000))
        if not sids or rng.random() < 0.2:
            sid = new_session(clock)
            sids.append(sid)
            await org.do(s.Create(
                session_id=sid, org_id=org.org_id, now=clock, avatar_id="av_stock_001",
                quality=rng.choice(("mock", "lite", "standard", "pro")),
                idle_timeout_seconds=30, max_duration_seconds=600, metadata={},
                transport=s.PipecatTransport()))
            continue
        sid = rng.choice(sids)
        state = org.states[sid]
        frames, seconds = state.frames + rng.randint(0, 500), state.billable_seconds + rng.randint(
            0, 70)
        commands: list[s.Command] = [
            s.Claim(session_id=sid, now=clock, worker_id=rng.choice(("wrk_a", "wrk_b"))),
            s.ReportFirstFrame(session_id=sid, now=clock),
            s.ReportUsage(session_id=sid, now=clock, frames=frames, billable_seconds=seconds),
            s.RequestEnd(session_id=sid, now=clock,
                         reason=rng.choice(("requested", "idle_timeout", "shutdown"))),
            s.Finish(session_id=sid, now=clock, frames=frames, billable_seconds=seconds),
            s.Fail(session_id=sid, now=clock, code=rng.choice((s.WORKER_LOST, s.INTERNAL)),
                   message="boom", frames=frames, billable_seconds=seconds),
        ]
        command = rng.choices(commands, weights=(5, 4, 6, 2, 2, 1))[0]
        try:
            await org.do(command)
        except Exception as refused:  # a command the state does not allow: nothing appended
            assert type(refused).__name__ == "Rejected"
    con = await exported(event_log)
    assert await assert_views_equal_the_models(event_log, con) >= len(sids)
    statuses = {r["status"] for r in rows(
        con, "SELECT DISTINCT status FROM sessions WHERE org_id = ?", org.org_id)}
    assert len(statuses) >= 4


async def test_odd_orderings_fold_as_the_domain_folds_them(event_log: EventLog) -> None:
    """The log is the truth even when it holds what no decision would write."""
    org = (await new_org(event_log)).org_id
    sid = new_session(T0)

    def at(n: int) -> datetime:
        return T0 + timedelta(seconds=n)

    base = {"session_id": sid, "org_id": org}
    created = s.SessionCreated(
        id=new_event_id(), at=at(1), avatar_id="av_stock_001", quality="pro",
        idle_timeout_seconds=30, max_duration_seconds=600, metadata={},
        transport=s.PipecatTransport(), **base)
    odd: list[s.Event] = [
        s.SessionHeartbeat(id=new_event_id(), at=at(0), frames=9, billable_seconds=9, **base),
        created,
        msgspec.structs.replace(created, id=new_event_id(), at=at(2), quality="lite"),
        s.SessionFirstFrame(id=new_event_id(), at=at(3), **base),  # while queued → running
        s.SessionEnding(id=new_event_id(), at=at(4), reason="shutdown", **base),
        s.SessionFirstFrame(id=new_event_id(), at=at(5), **base),  # while ending → ending
        s.SessionHeartbeat(id=new_event_id(), at=at(6), frames=50, billable_seconds=2, **base),
        # Counters are cumulative and never regress in a decision; the fold takes the last.
        s.SessionHeartbeat(id=new_event_id(), at=at(6), frames=40, billable_seconds=1, **base),
    ]
    for event in odd:
        await event_log.append([event])
    con = await exported(event_log)
    view = rows(con, f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?", sid)
    assert [(v["status"], v["quality"], v["frames"]) for v in view] == [("ending", "pro", 40)]
    after = [
        s.SessionEnded(id=new_event_id(), at=at(7), reason="completed", frames=10,
                       billable_seconds=1, **base),
        s.SessionFailed(id=new_event_id(), at=at(8), code="internal", message="late", **base),
        s.SessionHeartbeat(id=new_event_id(), at=at(9), frames=99, billable_seconds=99, **base),
    ]
    for event in after:
        await event_log.append([event])
    con = await exported(event_log)
    view = rows(con, f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?", sid)
    assert [(v["status"], v["end_reason"], v["frames"], v["billable_seconds"], v["failure_code"])
            for v in view] == [("ended", "shutdown", 40, 1, None)]
    await assert_views_equal_the_models(event_log, con)


async def test_grants_and_org_views(event_log: EventLog) -> None:
    name = f"audit-{uuid.uuid4().hex[:10]}"
    issued = await create_key(event_log, name, "starter")
    await grant_credits(event_log, name, 250)
    await create_key(event_log, name, "scale")  # a second key and a plan change
    con = await exported(event_log)
    assert rows(con, "SELECT type, credits FROM events WHERE org_id = ? AND credits IS NOT NULL",
                issued.org_id) == [{"type": "org.credits_granted", "credits": 250}]
    assert rows(con, "SELECT name, plan FROM orgs WHERE org_id = ?", issued.org_id) == [
        {"name": name, "plan": "scale"}]


async def test_the_orgs_view_counts_every_session_a_group_admission_names(
    event_log: EventLog,
) -> None:
    issued = await create_key(event_log, f"audit-{uuid.uuid4().hex[:10]}", "launch")
    org_id = issued.org_id
    grouped = tuple(new_session() for _ in range(3))
    admissions: list[o.Event] = [
        o.SessionAdmitted(id=new_event_id(), org_id=org_id, at=T0, session_id=new_session()),
        o.SessionsAdmitted(id=new_event_id(), org_id=org_id, at=T0, session_ids=grouped),
    ]
    for event in admissions:
        await event_log.append([event], Expect(
            subjects.org_admissions(org_id), await event_log.version(
                subjects.org_admissions(org_id))))
    con = await exported(event_log)
    assert rows(con, "SELECT sessions_admitted FROM orgs WHERE org_id = ?", org_id) == [
        {"sessions_admitted": 4}]
    await assert_views_equal_the_models(event_log, con)


def test_deliveries_view_shows_every_webhook_attempt(tmp_path: Path) -> None:
    """Parsed the way the export parses the log (here from events made in memory)."""
    org, endpoint, sid = "org_w", "we_1", "sess_w"
    made = [
        w.DeliveryAttempted(
            id=new_event_id(), org_id=org, endpoint_id=endpoint, at=T0 + timedelta(seconds=n),
            webhook_id="msg_1", event_type="session.ended", session_id=sid,
            source_event_id="evt_1", attempt=n, status=status, outcome=outcome,
            error=None if status else "timeout",
            next_attempt_at=T0 + timedelta(seconds=5) if outcome == "retrying" else None)
        for n, status, outcome in ((1, None, "retrying"), (2, 200, "delivered"))
    ]
    disabled = w.EndpointDisabled(id=new_event_id(), org_id=org, endpoint_id=endpoint,
                                  at=T0 + timedelta(seconds=9), reason="gone")
    con = duckdb.connect()
    audit.create_schema(con)
    events: list[Event] = [*made, disabled]
    part = audit_parts.Part(1, len(events), tmp_path / "part.tsv", events=len(events))
    with part.path.open("wb") as out:
        audit_parts.write(out, RawBatch(list(range(1, len(events) + 1)),
                                        [encode(e) for e in events]))
    audit.load_parts(con, [part])
    got = rows(con, "SELECT seq, type, endpoint_id, session_id, webhook_id, attempt, http_status, "
                    "outcome, error, epoch_us(next_attempt_at) AS retry, reason FROM deliveries "
                    "ORDER BY seq")
    assert got == [
        {"seq": 1, "type": "webhook.delivery_attempted", "endpoint_id": endpoint,
         "session_id": sid, "webhook_id": "msg_1", "attempt": 1, "http_status": None,
         "outcome": "retrying", "error": "timeout", "retry": epoch_us(T0 + timedelta(seconds=5)),
         "reason": None},
        {"seq": 2, "type": "webhook.delivery_attempted", "endpoint_id": endpoint,
         "session_id": sid, "webhook_id": "msg_1", "attempt": 2, "http_status": 200,
         "outcome": "delivered", "error": None, "retry": None, "reason": None},
        {"seq": 3, "type": "webhook.endpoint_disabled", "endpoint_id": endpoint,
         "session_id": None, "webhook_id": None, "attempt": None, "http_status": None,
         "outcome": None, "error": None, "retry": None, "reason": "gone"},
    ]


# ── report ──────────────────────────────────────────────────────────────────────


async def test_report_gives_percentiles_outcomes_and_minutes(
    event_log: EventLog, outcomes: Outcomes
) -> None:
    con = await exported(event_log)
    con.execute("DELETE FROM events WHERE org_id <> ?", [outcomes.org.org_id])
    text = audit.report(con)
    # First frames after 100, 200, 300, 400, 500 ms (linear interpolation).
    assert "sessions  p50 ms  p90 ms  p99 ms" in text
    assert "5   300.0   460.0   496.0" in text
    lines = text.splitlines()
    status = lines[lines.index("Sessions by final status") + 1:]
    assert status[0].split() == ["status", "failure", "code", "sessions"]
    assert ["ended", "2"] in [line.split() for line in status]
    assert ["failed", s.WORKER_LOST, "1"] in [line.split() for line in status]
    for single in ("queued", "canceled", "running", "ending"):
        assert [single, "1"] in [line.split() for line in status]
    billed = [line.split() for line in lines if line.strip().startswith(outcomes.org.org_id)]
    tiers = {row[2]: row[3:] for row in billed}
    assert tiers == {  # sessions, billable s, minutes, credits
        "lite": ["2", "60", "2", "1"], "mock": ["1", "120", "2", "2"],
        "pro": ["1", "61", "2", "4"], "standard": ["1", "5", "1", "1"],
    }


# ── verify ──────────────────────────────────────────────────────────────────────


@pytest.fixture
async def private_store(event_log: EventLog) -> AsyncIterator[SnapshotStore]:
    """A snapshot bucket of this test's own (the API processes of the run save to theirs)."""
    bucket = f"AUDIT_{uuid.uuid4().hex[:8].upper()}"
    store = await event_log.js.create_object_store(bucket)
    yield SnapshotStore(store)
    await event_log.js.delete_object_store(bucket)


async def save_rebuilt(log: EventLog, store: SnapshotStore) -> Models:
    models = await rebuilt(log, await log.last_seq())
    for model in models.by_kind.values():
        await snapshots.save(store, model)
    return models


async def test_verify_passes_when_every_snapshot_equals_its_rebuild(
    event_log: EventLog, outcomes: Outcomes, private_store: SnapshotStore
) -> None:
    await save_rebuilt(event_log, private_store)
    await outcomes.org.session(first_frame_ms=10, seconds=3)  # the snapshots lag the log
    checks = await verify(event_log, private_store)
    assert [(c.name, c.ok, c.compared) for c in checks] == [
        (name, True, True) for name in snapshots.NAMES.values()]
    assert {"sessions.v1", "orgs.v1", "usage.v1"} <= {c.name for c in checks}
    assert all(c.snapshot_seq == checks[0].snapshot_seq for c in checks)
    assert checks[0].snapshot_seq is not None
    assert checks[0].snapshot_seq < await event_log.last_seq()


async def test_verify_names_what_a_tampered_snapshot_changed(
    event_log: EventLog, outcomes: Outcomes, private_store: SnapshotStore
) -> None:
    models = await save_rebuilt(event_log, private_store)
    sessions, orgs = models.sessions, models.orgs
    sid = outcomes.ids["failed"]
    sessions.sessions[sid] = msgspec.structs.replace(
        sessions.sessions[sid], status="ended", billable_seconds=3)
    org = orgs.orgs[outcomes.org.org_id]
    orgs.orgs[org.id] = msgspec.structs.replace(org, plan="scale")
    await snapshots.save(private_store, sessions)
    await snapshots.save(private_store, orgs)
    checks = {c.name: c for c in await verify(event_log, private_store)}
    assert not checks["sessions.v1"].ok and not checks["orgs.v1"].ok
    assert all(c.ok for name, c in checks.items() if name not in ("sessions.v1", "orgs.v1"))
    assert checks["sessions.v1"].differences == [
        f"sessions[{sid}].status: snapshot 'ended', rebuild 'failed'",
        f"sessions[{sid}].billable_seconds: snapshot 3, rebuild 30",
    ]
    assert checks["orgs.v1"].differences == [
        f"orgs[{org.id}].plan: snapshot 'scale', rebuild 'launch'"]


async def test_verify_fails_on_a_snapshot_that_does_not_decode_or_runs_ahead(
    event_log: EventLog, private_store: SnapshotStore
) -> None:
    orgs = (await save_rebuilt(event_log, private_store)).orgs
    await private_store.save(snapshots.NAMES[SessionsModel], b"\xc1 not msgpack")
    orgs.last_seq = await event_log.last_seq() + 10
    await snapshots.save(private_store, orgs)
    checks = {c.name: c for c in await verify(event_log, private_store)}
    assert "does not decode as SessionsModel" in checks["sessions.v1"].differences[0]
    assert "the log ends at" in checks["orgs.v1"].differences[0]
    assert checks["usage.v1"].ok


def test_differences_walk_dicts_structs_and_lists_and_count_everything() -> None:
    a = {"x": [1, 2], "y": {"k": s.Failure("a", "b")}, "only_a": 1}
    b = {"x": [1, 3], "y": {"k": s.Failure("a", "c")}, "only_b": 2}
    assert list(differences(a, b)) == [
        "only_a: only in the snapshot (1)",
        "only_b: only in the rebuild (2)",
        "x[1]: snapshot 2, rebuild 3",
        "y[k].message: snapshot 'b', rebuild 'c'",
    ]
    assert list(differences(a, dict(a))) == []


# ── the command line ────────────────────────────────────────────────────────────


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "protoface", "audit", *args],
                          capture_output=True, text=True, timeout=timeout)


async def test_cli_export_writes_a_duckdb_file_with_a_progress_bar(
    nats_server: EmbeddedNats, event_log: EventLog, outcomes: Outcomes, tmp_path: Path
) -> None:
    out = tmp_path / "audit.duckdb"
    done = cli("export", "--out", str(out), "--nats-url", nats_server.url, "--progress")
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stdout and "events/s" in done.stdout
    assert "audit export [##############################] 100%" in done.stderr
    con = duckdb.connect(str(out), read_only=True)
    try:
        statuses = dict(con.execute("SELECT session_id, status FROM sessions WHERE org_id = ?",
                                    [outcomes.org.org_id]).fetchall())
    finally:
        con.close()
    assert statuses[outcomes.ids["failed"]] == "failed"
    assert statuses[outcomes.ids["running"]] == "running"
    assert not (tmp_path / "audit.duckdb.partial").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name != "audit.duckdb"]  # no parts left

    again = tmp_path / "again.duckdb"
    done = cli("export", "--out", str(again), "--nats-url", nats_server.url, "--readers", "2",
               "--progress")
    assert done.returncode == 0, done.stderr
    assert "2 readers" in done.stdout
    assert "audit export [##############################] 100%" in done.stderr
    con = duckdb.connect(str(again), read_only=True)
    try:
        assert dict(con.execute("SELECT session_id, status FROM sessions WHERE org_id = ?",
                                [outcomes.org.org_id]).fetchall()) == statuses
    finally:
        con.close()

    report = cli("report", "--db", str(out))
    assert report.returncode == 0, report.stderr
    assert "Time to first frame" in report.stdout and outcomes.org.org_id in report.stdout


async def test_cli_report_replays_the_log_in_memory(
    nats_server: EmbeddedNats, outcomes: Outcomes
) -> None:
    done = cli("report", "--nats-url", nats_server.url, "--readers", "2")
    assert done.returncode == 0, done.stderr
    for heading in ("Time to first frame", "Sessions by final status",
                    "Billable minutes by org and tier"):
        assert heading in done.stdout
    assert outcomes.org.org_id in done.stdout
    assert "[#" not in done.stderr  # stderr is not a terminal and --progress was not given


async def test_cli_verify_on_the_running_systems_snapshots(
    nats_server: EmbeddedNats, event_log: EventLog, outcomes: Outcomes
) -> None:
    """The shared bucket holds what this run's API processes saved, plus fresh snapshots
    (and what they save when verify asks)."""
    await save_rebuilt(event_log, await SnapshotStore.open(event_log))
    code, out = await verify_cli(nats_server.url)
    assert code == 0, out
    assert "sessions.v1: snapshot at sequence" in out
    assert out.rstrip().endswith("verify: OK")


async def test_cli_verify_fails_on_a_tampered_snapshot(tmp_path: Path) -> None:
    """On a NATS of its own: no API process may save over the tampered snapshot."""
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "jetstream").start()
    log = await EventLog.connect(server.url)
    try:
        org = await new_org(log)
        sid = await org.session(first_frame_ms=120, seconds=20, end="requested")
        await org.session()
        # No snapshot and no API process: the models are rebuilt from the log alone.
        nothing = cli("verify", "--nats-url", server.url)
        assert nothing.returncode == 0, nothing.stdout + nothing.stderr
        assert "sessions.v1: no snapshot saved: rebuilt from the log" in nothing.stdout
        assert "no running API process saved them" in nothing.stdout

        store = await SnapshotStore.open(log)
        sessions = (await save_rebuilt(log, store)).sessions
        assert cli("verify", "--nats-url", server.url).returncode == 0

        sessions.sessions[sid] = msgspec.structs.replace(sessions.sessions[sid], frames=1)
        await snapshots.save(store, sessions)
        done = cli("verify", "--nats-url", server.url)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"sessions[{sid}].frames: snapshot 1, rebuild 500" in done.stdout
        assert "sessions.v1: snapshot at sequence" in done.stdout and "DIFFERS" in done.stdout
        assert "orgs.v1: snapshot at sequence" in done.stdout
        assert f"verify: FAILED (1 of {len(snapshots.NAMES)} projections differ)" in done.stdout
    finally:
        await log.close()
        server.stop()


def test_cli_verify_shows_the_apis_position(live_server: object) -> None:
    url = live_server.url  # type: ignore[attr-defined]
    nats_url = live_server.nats_url  # type: ignore[attr-defined]
    done = cli("verify", "--nats-url", nats_url, "--api-url", url)
    assert f"api {url}: its projections have applied sequence" in done.stdout


# ── verify on a running deployment, however young ───────────────────────────────


@dataclass
class Deployment:
    nats_url: str
    services: Services


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """An API's services on a NATS of their own, just started: the periodic snapshot is an
    hour away, so any snapshot verify sees is one it asked for."""
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "jetstream").start()
    settings = Settings(nats_url=server.url, data_dir=tmp_path / "data",
                        when_at_capacity="queue", snapshot_seconds=3600)
    keyring = load_keyring(settings.keys_file, create=True)
    services = await Services.start(settings, keyring)
    try:
        yield Deployment(server.url, services)
    finally:
        await services.stop()
        server.stop()


async def verify_cli(nats_url: str) -> tuple[int, str]:
    """``protoface audit verify`` in a child process, with this loop free to serve the
    in-process API's answer to its save request (``cli`` would block the loop)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "protoface", "audit", "verify", "--nats-url", nats_url,
        "--wait", "30", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(child.communicate(), timeout=120)
    assert child.returncode is not None
    return child.returncode, out.decode()


async def test_verify_passes_on_a_deployment_seconds_old_with_no_sessions(
    deployment: Deployment,
) -> None:
    code, out = await verify_cli(deployment.nats_url)
    assert code == 0, out
    assert "live read models: saved just now by a running API process" in out
    for name in snapshots.NAMES.values():
        assert f"{name}: snapshot at sequence" in out, out
    assert out.rstrip().endswith("verify: OK")


async def test_verify_compares_the_live_models_before_and_after_the_first_snapshot(
    deployment: Deployment,
) -> None:
    log = deployment.services.log
    org = await new_org(log)
    await org.session(first_frame_ms=120, seconds=20, end="requested")
    await deployment.services.projector.catch_up()
    first, out = await verify_cli(deployment.nats_url)  # before any periodic snapshot
    assert first == 0, out
    await org.session(quality="lite", first_frame_ms=80, seconds=3)
    await deployment.services.projector.catch_up()
    second, out = await verify_cli(deployment.nats_url)  # after the snapshot it asked for
    assert second == 0, out
    assert f"sessions.v1: snapshot at sequence {await log.last_seq():,} equals" in out


async def test_verify_fails_loudly_on_a_corrupted_live_read_model(
    deployment: Deployment,
) -> None:
    org = await new_org(deployment.services.log)
    sid = await org.session(first_frame_ms=120, seconds=20, end="requested")
    await deployment.services.projector.catch_up()
    model = deployment.services.sessions_model
    model.sessions[sid] = msgspec.structs.replace(model.sessions[sid], frames=1)
    code, out = await verify_cli(deployment.nats_url)
    assert code == 1, out
    assert "sessions.v1: snapshot at sequence" in out and "DIFFERS" in out
    assert f"sessions[{sid}].frames: snapshot 1, rebuild 500" in out
    assert f"verify: FAILED (1 of {len(snapshots.NAMES)} projections differ)" in out


async def test_verify_live_asks_the_running_api_to_save_its_models(
    deployment: Deployment,
) -> None:
    log = deployment.services.log
    saved, checks = await verify_live(log, await SnapshotStore.open(log), wait=30)
    assert saved
    end = await log.last_seq()
    assert [(c.name, c.ok, c.snapshot_seq) for c in checks] == [
        (name, True, end) for name in snapshots.NAMES.values()]


async def test_verify_live_without_a_running_api_rebuilds_from_the_log_alone(
    own_log: EventLog,
) -> None:
    await (await new_org(own_log)).session(first_frame_ms=50, seconds=2)
    saved, checks = await verify_live(own_log, await SnapshotStore.open(own_log), wait=5)
    assert not saved
    end = await own_log.last_seq()
    assert all(c.ok and not c.compared for c in checks)
    assert all(f"rebuilt from the log to sequence {end:,}" in c.note for c in checks)


async def test_a_save_that_fails_is_answered_at_once_not_waited_out(own_log: EventLog) -> None:
    store = await SnapshotStore.open(own_log)

    async def failing() -> None:
        raise OSError("object store unavailable")

    stop = await store.answer_save_requests(failing)
    try:
        started = asyncio.get_running_loop().time()
        assert not await store.request_save(timeout=20)
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await stop()
