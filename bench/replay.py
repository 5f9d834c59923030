"""Replaying the event log into DuckDB (``protoface audit export``), beside a raw read.

    python -m bench.replay [--events 1000000] [--runs 2] [--readers N] [--orgs 200] [--budget 300]
                           [--keep]

A temporary embedded nats-server gets ``--events`` realistic events: orgs with a
key each, then sessions as the system writes them (``org.session_admitted``,
``session.created``, ``queued``; most are claimed, reach their first frame, send a
heartbeat every 5 s and end; some fail with ``worker_lost``, some are canceled
while queued), encoded exactly as the log stores them, on their real subjects.
They are published as core NATS messages with a flush every 5,000, each with its
``Nats-Msg-Id`` header as every stored event has (but no expectation headers and no
acks: the stream stores them all, which is checked), so a million take seconds
rather than a minute.

Then, alternating so drift in the machine's load shows (A-B-A-B …, ``--runs`` each):

* ``raw nats-py``: an ordered push consumer over ``events.>`` from sequence 1 whose
  callback only counts (no decode, nothing kept): the ceiling of any Python reader;
* ``EventLog.replay_raw``: the log's bulk read path, batches of (sequence, bytes),
  nothing else done with them;
* ``audit export``: :func:`projections.audit.export_file`, the command's own code
  path: the whole log into a new DuckDB file, read by ``--readers`` reader processes
  at once (default: the command's, one per core), each a range of the log into a part
  file, then parsed by DuckDB and checkpointed; its wall time includes the readers'
  startup, the parse and the checkpoint.

Every rate is events per second of wall time from subscribing to the last event (for
the export: from the command's start to the file being complete). CPU of this process,
of the export's reader processes (each reports its own) and of nats-server is
sampled over each run. The export is checked: ``events`` holds every event and the
``sessions`` view one row per generated session with the generated outcomes.

Target: >= 100,000 events/s into DuckDB; where the raw read itself is slower than
that, >= 50 % of the raw read in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from protoface.api import serving
from protoface.domain import org as o
from protoface.domain import session as s
from protoface.domain.events import Event
from protoface.projections import audit
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, encode, subject_of
from protoface.streams.server import EmbeddedNats, free_port

TARGET_RATE = 100_000.0
TARGET_SHARE = 0.50
RAW, REPLAY, EXPORT = "raw nats-py ordered consumer", "EventLog.replay_raw", "audit export"
QUALITIES: tuple[s.Quality, ...] = ("lite", "standard", "standard", "pro", "mock")


# ── A realistic log ──────────────────────────────────────────────────────────────


@dataclass
class Generated:
    events: int = 0
    sessions: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def realistic_events(total: int, orgs: int, seed: int, made: Generated) -> Iterator[Event]:
    """``total`` events of ``orgs`` orgs and their sessions, in the order the system appends."""
    rng = random.Random(seed)
    clock = datetime(2025, 1, 1, tzinfo=UTC)
    ids = iter(range(1, 1 << 62))

    def eid() -> str:
        return f"evt_{next(ids):026d}"

    org_ids = [f"org_bench{n:05d}" for n in range(orgs)]
    for n, org_id in enumerate(org_ids):
        yield o.OrgCreated(id=eid(), org_id=org_id, at=clock, name=f"bench-{n}", plan="scale")
        yield o.ApiKeyCreated(id=eid(), org_id=org_id, at=clock, key_id=f"key_{n:05d}",
                              key_hash=f"{n:064x}", key_hint=f"{n % 10_000:04d}")
    made.events = 2 * orgs
    number = 0
    while made.events < total:
        number += 1
        clock += timedelta(milliseconds=rng.randint(5, 400))
        sid, org_id = f"sess_bench{number:020d}", rng.choice(org_ids)
        at = clock
        lifecycle: list[Event] = [
            o.SessionAdmitted(id=eid(), org_id=org_id, at=at, session_id=sid),
            s.SessionCreated(
                id=eid(), session_id=sid, org_id=org_id, at=at, avatar_id="av_stock_001",
                quality=rng.choice(QUALITIES), idle_timeout_seconds=30,
                max_duration_seconds=600, metadata={"customer_ref": f"call-{number}"},
                transport=s.PipecatTransport(), api_key_id=f"key_{org_ids.index(org_id):05d}"),
            s.SessionQueued(id=eid(), session_id=sid, org_id=org_id, at=at),
        ]
        outcome = rng.choices(("ended", "failed", "canceled"), weights=(85, 5, 10))[0]
        if outcome == "canceled":
            at += timedelta(milliseconds=rng.randint(10, 500))
            lifecycle.append(s.SessionCanceled(id=eid(), session_id=sid, org_id=org_id, at=at))
        else:
            at += timedelta(milliseconds=rng.randint(5, 50))
            lifecycle.append(s.SessionStarting(id=eid(), session_id=sid, org_id=org_id, at=at,
                                               worker_id=f"wrk_{rng.randint(1, 40):03d}"))
            at += timedelta(milliseconds=rng.randint(8, 400))
            lifecycle.append(s.SessionFirstFrame(id=eid(), session_id=sid, org_id=org_id, at=at))
            seconds = 0
            for _ in range(rng.randint(0, 24)):
                seconds += 5
                lifecycle.append(s.SessionHeartbeat(
                    id=eid(), session_id=sid, org_id=org_id, at=at + timedelta(seconds=seconds),
                    frames=seconds * 25, billable_seconds=seconds))
            end = at + timedelta(seconds=seconds + rng.randint(0, 4))
            seconds = int((end - at).total_seconds())
            if outcome == "failed":
                lifecycle.append(s.SessionFailed(
                    id=eid(), session_id=sid, org_id=org_id, at=end, code=s.WORKER_LOST,
                    message="The worker stopped sending heartbeats.", frames=seconds * 25,
                    billable_seconds=seconds))
            else:
                reason: s.EndReason = rng.choice(("requested", "idle_timeout", "max_duration"))
                lifecycle.append(s.SessionEnding(id=eid(), session_id=sid, org_id=org_id,
                                                 at=end, reason=reason))
                lifecycle.append(s.SessionEnded(
                    id=eid(), session_id=sid, org_id=org_id, at=end + timedelta(milliseconds=30),
                    reason=reason, frames=seconds * 25, billable_seconds=seconds))
        lifecycle = lifecycle[: total - made.events]
        made.events += len(lifecycle)
        if any(isinstance(e, s.SessionCreated) for e in lifecycle):
            made.sessions += 1
            folded = s.fold([e for e in lifecycle if isinstance(e, s.SessionEvent)])
            assert folded is not None
            made.statuses[folded.status] += 1
        yield from lifecycle


async def publish(url: str, total: int, orgs: int, seed: int) -> tuple[Generated, float]:
    """Publish the log; returns what was generated and the publish rate."""
    log = await EventLog.connect(url, name="bench-replay-publish")
    made = Generated()
    started = time.perf_counter()
    try:
        for n, event in enumerate(realistic_events(total, orgs, seed, made), 1):
            await log.nc.publish(subject_of(event), encode(event),
                                 headers={subjects.MSG_ID: event.id})
            if n % 5000 == 0:
                await log.nc.flush()  # back-pressure: never more than 5,000 unacknowledged
        await log.nc.flush()
        deadline = time.monotonic() + 60
        while (stored := await log.last_seq()) < made.events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stream holds {stored:,} of {made.events:,} events")
            await asyncio.sleep(0.1)
        if stored != made.events:
            raise RuntimeError(f"the stream holds {stored:,} events, {made.events:,} published")
    finally:
        await log.close()
    return made, made.events / (time.perf_counter() - started)


# ── The readers ──────────────────────────────────────────────────────────────────


async def raw_read(url: str, total: int) -> int:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url, name="bench-replay-raw")
    done = asyncio.Event()
    count = 0

    async def on_msg(msg: object) -> None:
        nonlocal count
        count += 1
        if count == total:
            done.set()

    try:
        # As EventLog subscribes: an ordered push consumer from sequence 1, same limits.
        sub = await nc.jetstream().subscribe(
            "events.>", stream="EVENTS", cb=on_msg, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                  opt_start_seq=1),
            pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30)
        await asyncio.wait_for(done.wait(), timeout=600)
        await sub.unsubscribe()
    finally:
        await nc.drain()
    return count


async def replay_raw(url: str, total: int) -> int:
    log = await EventLog.connect(url, name="bench-replay")
    count = 0
    try:
        async for batch in log.replay_raw(1):
            count += len(batch)
    finally:
        await log.close()
    return count


EXPORTS: list[audit.Exported] = []  # per export run
LOAD_AT_START = os.getloadavg()[0]


async def export(url: str, path: Path, readers: int | None) -> int:
    log = await EventLog.connect(url, name="bench-replay-export")
    try:
        done = await audit.export_file(log, path, readers=readers)
    finally:
        await log.close()
    EXPORTS.append(done)
    return done.events


# ── Measuring ────────────────────────────────────────────────────────────────────


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    cpu: float  # this process, all threads (DuckDB's included)
    nats_cpu: float
    readers_cpu: float = 0.0  # the export's reader processes

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def measure(name: str, nats: EmbeddedNats, read: Callable[[], Coroutine[Any, Any, int]]) -> Run:
    assert nats.process is not None
    print(f"  {name} …", file=sys.stderr, flush=True)
    nats0, cpu0, t0 = _proc_cpu(nats.process.pid), time.process_time(), time.perf_counter()
    exports = len(EXPORTS)
    events = serving.run(read())
    seconds = time.perf_counter() - t0
    readers_cpu = sum(x.reader_cpu_seconds for x in EXPORTS[exports:])
    return Run(name, events, seconds, time.process_time() - cpu0,
               _proc_cpu(nats.process.pid) - nats0, readers_cpu)


@dataclass
class Summary:
    name: str
    runs: list[Run]

    @property
    def rate(self) -> float:
        return sum(r.events for r in self.runs) / sum(r.seconds for r in self.runs)

    def per_event_us(self, attr: str) -> float:
        used = sum(float(getattr(r, attr)) for r in self.runs)
        return used / sum(r.events for r in self.runs) * 1e6

    def share(self, attr: str) -> float:
        """CPU over wall time: 1.0 = one core busy the whole run."""
        return sum(float(getattr(r, attr)) for r in self.runs) / sum(r.seconds for r in self.runs)


def check_export(path: Path, made: Generated) -> list[tuple[bool, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        events = con.execute("SELECT count(*), max(seq) FROM events").fetchone()
        sessions = dict(con.execute(
            "SELECT status, count(*) FROM sessions GROUP BY status").fetchall())
        usage = con.execute("SELECT count(*), sum(minutes) FROM usage").fetchone()
    finally:
        con.close()
    assert events is not None and usage is not None
    return [
        (events[0] == made.events == events[1],
         f"events table: {events[0]:,} rows up to seq {events[1]:,}; {made.events:,} published"),
        (sessions == dict(made.statuses),
         f"sessions view: {sum(sessions.values()):,} sessions {dict(sorted(sessions.items()))}; "
         f"generated {dict(sorted(made.statuses.items()))}"),
        (True, f"usage view: {usage[0]:,} claimed sessions, {usage[1] or 0:,} billable minutes"),
    ]


def report(summaries: list[Summary], made: Generated, publish_rate: float,
           checks: list[tuple[bool, str]]) -> bool:
    by = {x.name: x for x in summaries}
    raw, export_ = by[RAW], by[EXPORT]
    print()
    print(f"{made.events:,} events ({made.sessions:,} sessions), published at "
          f"{publish_rate:,.0f}/s; {len(raw.runs)} run(s) each, alternating; "
          f"{os.cpu_count()} CPUs; export reader processes: "
          f"{', '.join(str(x.readers) for x in EXPORTS)}; load average (1 min) "
          f"{LOAD_AT_START:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| read | events/s | vs raw | runs (events/s) | this process CPU µs/event "
          "| reader processes CPU µs/event | nats-server CPU µs/event "
          "| all CPU / wall (cores) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for x in summaries:
        readers = f"{x.per_event_us('readers_cpu'):.1f}" if x is export_ else "–"
        cores = (x.share("cpu") + x.share("readers_cpu") + x.share("nats_cpu"))
        print(f"| {x.name} | {x.rate:,.0f} | {x.rate / raw.rate:.2f} | "
              f"{', '.join(f'{r.rate:,.0f}' for r in x.runs)} | {x.per_event_us('cpu'):.1f} | "
              f"{readers} | {x.per_event_us('nats_cpu'):.1f} | {cores:.2f} |")
    print()
    rate = export_.rate
    if raw.rate >= TARGET_RATE:
        target = (rate >= TARGET_RATE, f"export {rate:,.0f} events/s >= {TARGET_RATE:,.0f}/s")
    else:
        target = (rate >= TARGET_SHARE * raw.rate,
                  f"export {rate:,.0f} events/s is {rate / raw.rate:.0%} of the raw read "
                  f"({raw.rate:,.0f}/s, below the {TARGET_RATE:,.0f}/s target itself) "
                  f">= {TARGET_SHARE:.0%}")
    print(f"The raw read is bound by this process's one Python thread "
          f"({raw.share('cpu'):.0%} of a core over the run, {raw.per_event_us('cpu'):.1f} µs "
          f"per event in nats-py's protocol parsing and delivery) while nats-server spends "
          f"{raw.per_event_us('nats_cpu'):.1f} µs per event.")
    replay = by[REPLAY]
    parse = sum(x.parse_seconds for x in EXPORTS) / sum(r.seconds for r in export_.runs)
    readers = sorted({x.readers for x in EXPORTS})
    print(f"The export read the log with {', '.join(map(str, readers))} reader process(es) "
          f"at once, each a range through EventLog.replay_raw (one reader in one process: "
          f"{replay.rate / raw.rate:.0%} of the raw read) into a part file; DuckDB parsed the "
          f"parts once all were read: {parse:.0%} of the export's time (on every core).")
    print()
    checks = [target, *checks]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.replay", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="runs of each reader, alternating")
    parser.add_argument("--readers", type=int, default=None,
                        help="the export's reader processes (default: the command's own)")
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds in all: no further round starts that would pass it")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (store, .duckdb)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global LOAD_AT_START
    LOAD_AT_START = os.getloadavg()[0]
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="protoface-bench-replay-"))
    nats = EmbeddedNats(port=free_port(), store_dir=tmp / "jetstream", log_file=tmp / "nats.log")
    try:
        nats.start()
        print(f"publishing {args.events:,} events …", file=sys.stderr, flush=True)
        made, publish_rate = serving.run(publish(nats.url, args.events, args.orgs, args.seed))
        out = tmp / "audit.duckdb"
        readers: list[tuple[str, Callable[[], Coroutine[Any, Any, int]]]] = [
            (RAW, lambda: raw_read(nats.url, made.events)),
            (REPLAY, lambda: replay_raw(nats.url, made.events)),
            (EXPORT, lambda: export(nats.url, out, args.readers)),
        ]
        summaries = [Summary(name, []) for name, _ in readers]
        for round_ in range(args.runs):
            round_started = time.monotonic()
            for (name, read), summary in zip(readers, summaries, strict=True):
                run = measure(name, nats, read)
                if run.events != made.events:
                    raise RuntimeError(f"{name} read {run.events:,} of {made.events:,} events")
                summary.runs.append(run)
            took = time.monotonic() - round_started
            if round_ + 1 < args.runs and time.monotonic() - started + took > args.budget:
                print(f"stopping after {round_ + 1} round(s): another would pass the "
                      f"{args.budget:g} s budget", file=sys.stderr)
                break
        ok = report(summaries, made, publish_rate, check_export(out, made))
        print(f"\ntotal {time.monotonic() - started:.0f} s"
              + (f"; store and audit.duckdb in {tmp}" if args.keep else ""))
        return 0 if ok else 1
    finally:
        nats.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
