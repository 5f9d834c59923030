"""The audit projection: the whole event log in DuckDB, for people to query.

``protoface audit export`` replays the log from sequence 1 into one table and a few
views over it; ``protoface audit report`` prints the figures operators ask for.

* ``events`` — one row per stored event: ``seq``, ``type``, ``at`` (a reserved word
  in DuckDB: write ``"at"`` or ``events.at``), ``id``, ``org_id``, ``session_id``
  (NULL for org events that name no session), typed columns for the fields worth
  filtering on (``avatar_id``, ``quality``, ``worker_id``, ``reason``, ``code``,
  ``message``, ``frames``, ``billable_seconds``, ``plan``, ``key_id``, ``credits``,
  ``endpoint_id``),
  and ``data``: the event exactly as the log stores it (JSON), so nothing is lost
  and event types added later land here too. Typed columns hold the decoded value
  (a field an older event lacks gets the domain's default).
* ``sessions`` — one row per session, its final state: the domain's fold
  (``domain.session.evolve``) written in SQL, checked against ``SessionsModel`` by
  the tests: events before the creation are ignored, the first terminal event
  absorbs every later one.
* ``usage`` — one row per claimed session (as ``UsageModel`` keeps them): billable
  seconds, minutes rounded up, the tier's multiplier and credits, from the
  ``tiers`` table written from ``domain.billing``.
* ``orgs`` — one row per org: name, current plan, creation time.
* ``deliveries`` — the webhook events (``webhook.*``): every delivery attempt with its
  webhook id, attempt, HTTP status and outcome, and the endpoints' lifecycle.

Reading is the bulk path of the log (:meth:`EventLog.replay_raw`), split into ranges
read at once by reader processes, one per core (:mod:`projections.audit_parts`): the
stored JSON goes undecoded to part files, and DuckDB parses them all in one pass (one
per event, on its own threads) once the read is done. Python never decodes an event
here; one nats-py reader is one busy core, so several read faster (``bench/replay.py``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from protoface.domain.billing import BILLS_AS, MILLI, MINUTE_COST
from protoface.projections import audit_parts
from protoface.projections.audit_parts import Part
from protoface.streams.eventlog import EventLog

Progress = Callable[[int, int], None]  # (events read, events to read)

TERMINAL_TYPES = "('session.ended', 'session.failed', 'session.canceled')"

# The fields with a typed column, and their DuckDB types (parsed once per event).
_FIELDS = {
    "type": "VARCHAR", "at": "TIMESTAMPTZ", "id": "VARCHAR", "org_id": "VARCHAR",
    "session_id": "VARCHAR", "avatar_id": "VARCHAR", "quality": "VARCHAR",
    "worker_id": "VARCHAR", "reason": "VARCHAR", "code": "VARCHAR", "message": "VARCHAR",
    "frames": "BIGINT", "billable_seconds": "BIGINT", "plan": "VARCHAR", "key_id": "VARCHAR",
    "credits": "BIGINT", "endpoint_id": "VARCHAR",
}
_STRUCTURE = "{" + ", ".join(f'"{k}": "{v}"' for k, v in _FIELDS.items()) + "}"

EVENTS_TABLE = """
CREATE TABLE events (
    seq BIGINT NOT NULL, type VARCHAR NOT NULL, "at" TIMESTAMPTZ, id VARCHAR,
    org_id VARCHAR, session_id VARCHAR, avatar_id VARCHAR, quality VARCHAR,
    worker_id VARCHAR, reason VARCHAR, code VARCHAR, message VARCHAR, frames BIGINT,
    billable_seconds BIGINT, plan VARCHAR, key_id VARCHAR, credits BIGINT,
    endpoint_id VARCHAR, data JSON
)"""

# The part files (``seq<TAB>stored JSON`` lines, see projections.audit_parts), read in
# the order given by DuckDB's CSV reader on all its threads, each row parsed in one pass
# (from_json), not once per column. The stored JSON is kept as it is in ``data``.
_PARTS = ("read_csv($parts, delim = '\t', quote = '', escape = '', header = false, "
          "auto_detect = false, columns = {'seq': 'BIGINT', 'data': 'VARCHAR'})")
_PARSE = f"""
INSERT INTO events
SELECT seq, e.type, e.at, e.id, e.org_id, e.session_id, e.avatar_id, e.quality,
       e.worker_id,
       coalesce(e.reason, CASE e.type WHEN 'session.ending' THEN 'requested'
                                      WHEN 'session.ended' THEN 'completed' END),
       e.code, e.message,
       CASE WHEN e.type IN ('session.ended', 'session.failed')
            THEN coalesce(e.frames, 0) ELSE e.frames END,
       CASE WHEN e.type IN ('session.ended', 'session.failed')
            THEN coalesce(e.billable_seconds, 0) ELSE e.billable_seconds END,
       e.plan, e.key_id,
       CASE WHEN e.type = 'org.credits_granted' THEN coalesce(e.credits, 0) ELSE e.credits END,
       e.endpoint_id, json
FROM (SELECT seq, CAST(data AS JSON) AS json, from_json(data, '{_STRUCTURE}') AS e
      FROM {_PARTS})
"""

VIEWS = f"""
CREATE VIEW sessions AS
WITH lifecycle AS (
    SELECT * FROM events WHERE type LIKE 'session.%' AND session_id IS NOT NULL
),
born AS (
    SELECT session_id, min(seq) AS created_seq FROM lifecycle
    WHERE type = 'session.created' GROUP BY session_id
),
lived AS (  -- the fold has no state before the creation: earlier events change nothing
    SELECT l.*, b.created_seq FROM lifecycle l JOIN born b USING (session_id)
    WHERE l.seq >= b.created_seq
),
ends AS (  -- its first terminal event, and its last event (the session's version)
    SELECT session_id, min(seq) FILTER (type IN {TERMINAL_TYPES}) AS end_seq,
        max(seq) AS version
    FROM lived GROUP BY session_id
),
applied AS (  -- the first terminal event absorbs every later one
    SELECT l.* FROM lived l JOIN ends e USING (session_id)
    WHERE e.end_seq IS NULL OR l.seq <= e.end_seq
),
folded AS (
    SELECT session_id, min(seq) AS created_seq, count(*) AS events,
        arg_max(type, seq) FILTER (type NOT IN ('session.heartbeat', 'session.first_frame'))
            AS last_change,
        max(seq) FILTER (type NOT IN ('session.heartbeat', 'session.first_frame'))
            AS last_change_seq,
        max(seq) FILTER (type = 'session.first_frame') AS first_frame_seq,
        arg_max(worker_id, seq) FILTER (type = 'session.starting') AS worker_id,
        arg_max("at", seq) FILTER (type = 'session.starting') AS started_at,
        arg_max("at", seq) FILTER (type = 'session.first_frame') AS first_frame_at,
        max("at") FILTER (type IN ('session.ended', 'session.canceled')) AS ended_at,
        max("at") FILTER (type = 'session.failed') AS failed_at,
        max(code) FILTER (type = 'session.failed') AS failure_code,
        max(message) FILTER (type = 'session.failed') AS failure_message,
        arg_max(reason, seq) FILTER (type = 'session.ending') AS ending_reason,
        max(reason) FILTER (type = 'session.ended') AS ended_reason,
        arg_max(frames, seq) FILTER (type = 'session.heartbeat') AS heartbeat_frames,
        arg_max(billable_seconds, seq) FILTER (type = 'session.heartbeat') AS heartbeat_seconds,
        max(frames) FILTER (type IN ('session.ended', 'session.failed')) AS final_frames,
        max(billable_seconds) FILTER (type IN ('session.ended', 'session.failed'))
            AS final_seconds
    FROM applied GROUP BY session_id
)
SELECT f.session_id, c.org_id, c.avatar_id, c.quality,
    c.data->'transport'->>'type' AS transport, c.data->>'api_key_id' AS api_key_id,
    CASE WHEN f.first_frame_seq > f.last_change_seq
         THEN CASE f.last_change WHEN 'session.ending' THEN 'ending' ELSE 'running' END
         ELSE replace(f.last_change, 'session.', '') END AS status,
    c."at" AS created_at, f.started_at, f.first_frame_at, f.ended_at, f.failed_at,
    (epoch_us(f.first_frame_at) - epoch_us(c."at")) / 1000.0 AS time_to_first_frame_ms,
    f.failure_code, f.failure_message, coalesce(f.ending_reason, f.ended_reason) AS end_reason,
    f.worker_id,
    greatest(coalesce(f.heartbeat_frames, 0), coalesce(f.final_frames, 0)) AS frames,
    greatest(coalesce(f.heartbeat_seconds, 0), coalesce(f.final_seconds, 0))
        AS billable_seconds,
    c.data->'metadata' AS metadata, f.events, e.version
FROM folded f
JOIN applied c ON c.session_id = f.session_id AND c.seq = f.created_seq
JOIN ends e ON e.session_id = f.session_id;

CREATE VIEW usage AS
SELECT s.session_id, s.org_id, s.avatar_id, s.quality, t.bills_as, s.started_at,
    strftime(timezone('UTC', s.started_at), '%Y-%m') AS month, s.status,
    s.status IN {TERMINAL_TYPES.replace("session.", "")} AS final,
    s.billable_seconds,
    CAST((greatest(s.billable_seconds, 0) + 59) // 60 AS BIGINT) AS minutes,
    t.multiplier,
    CAST((greatest(s.billable_seconds, 0) + 59) // 60 AS BIGINT) * t.multiplier AS credits,
    CAST((greatest(s.billable_seconds, 0) + 59) // 60 AS BIGINT) * t.minute_cost_milli
        AS credits_milli
FROM sessions s LEFT JOIN tiers t USING (quality)
WHERE s.started_at IS NOT NULL;

CREATE VIEW orgs AS
SELECT org_id,
    arg_min(data->>'name', seq) FILTER (type = 'org.created') AS name,
    arg_max(plan, seq) FILTER (type IN ('org.created', 'org.plan_changed')) AS plan,
    min("at") FILTER (type = 'org.created') AS created_at,
    (count(*) FILTER (type = 'org.session_admitted'))
        + coalesce(sum(json_array_length(data->'session_ids'))
                   FILTER (type = 'org.sessions_admitted'), 0) AS sessions_admitted
FROM events WHERE type LIKE 'org.%' GROUP BY org_id;

CREATE VIEW deliveries AS
SELECT seq, "at", type, id, org_id, endpoint_id, session_id,
    data->>'webhook_id' AS webhook_id, data->>'event_type' AS event_type,
    data->>'source_event_id' AS source_event_id,
    TRY_CAST(data->>'attempt' AS INTEGER) AS attempt,
    TRY_CAST(data->>'status' AS INTEGER) AS http_status,
    data->>'outcome' AS outcome, data->>'error' AS error,
    TRY_CAST(data->>'next_attempt_at' AS TIMESTAMPTZ) AS next_attempt_at,
    reason, data
FROM events WHERE type LIKE 'webhook.%';
"""


def _tiers_table(con: duckdb.DuckDBPyConnection) -> None:
    """Credit multipliers by quality tier, from ``domain.billing`` (the one source)."""
    con.execute("CREATE TABLE tiers (quality VARCHAR, bills_as VARCHAR, "
                "minute_cost_milli BIGINT, multiplier DECIMAL(9, 3))")
    con.executemany("INSERT INTO tiers VALUES (?, ?, ?, ?)", [
        (quality, bills_as, MINUTE_COST[bills_as], MINUTE_COST[bills_as] / MILLI)
        for quality, bills_as in sorted(BILLS_AS.items())
    ])


@dataclass(frozen=True, slots=True)
class Exported:
    events: int
    last_seq: int
    seconds: float  # in all
    parse_seconds: float  # of which parsing the parts after the read ended
    readers: int = 1  # reader processes (1: read in this process)
    reader_cpu_seconds: float = 0.0  # the reader processes' CPU (0 when read in this process)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    for view in ("deliveries", "orgs", "usage", "sessions"):
        con.execute(f"DROP VIEW IF EXISTS {view}")
    for table in ("events", "tiers", "audit_export"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(EVENTS_TABLE)
    _tiers_table(con)
    con.execute(VIEWS)


async def export(
    log: EventLog, con: duckdb.DuckDBPyConnection, *, until: int | None = None,
    progress: Progress | None = None, batch_size: int = 8192, readers: int | None = None,
    scratch: Path | None = None,
) -> Exported:
    """Replay the log from sequence 1 (to ``until``, default its end now) into ``con``.

    With more than one reader (default: one per core, but no more than one per
    ``MIN_EVENTS_PER_READER`` events) the sequences are split into ranges read by
    reader processes at once (:mod:`projections.audit_parts`); with one, this process
    reads. Either way the events go to part files in a temporary directory under
    ``scratch`` (about as many bytes as the stored events),
    parsed into ``events`` once all are read.
    """
    started = time.perf_counter()
    end = await log.last_seq()
    if until is not None:
        end = min(end, until)
    create_schema(con)
    wanted = audit_parts.readers_for(end) if readers is None else readers
    if not log.url:
        wanted = 1  # a connection made without connect(): no URL to give a reader process
    count = 0

    def read(n: int) -> None:
        nonlocal count
        count += n
        if progress is not None:
            progress(count, end)

    if progress is not None:
        progress(0, end)
    with tempfile.TemporaryDirectory(prefix="protoface-audit-", dir=scratch) as tmp:
        parts = [Part(a, b, Path(tmp) / f"part-{n:03d}.tsv")
                 for n, (a, b) in enumerate(audit_parts.split(1, end, wanted))]
        parts = await _read(log, parts, read, batch_size)
        read_at = time.perf_counter()
        # DuckDB parses outside the GIL: keep the event loop free meanwhile.
        await asyncio.to_thread(load_parts, con, parts)
    finished = time.perf_counter()
    last = max((p.last_seq for p in parts), default=0)
    events = sum(p.events for p in parts)
    con.execute("CREATE TABLE audit_export AS SELECT ?::BIGINT AS last_seq, ?::BIGINT AS events, "
                "now() AS exported_at", [last, events])
    return Exported(events, last, finished - started, finished - read_at, max(len(parts), 1),
                    sum(p.cpu_seconds for p in parts))


async def _read(
    log: EventLog, parts: list[Part], read: Callable[[int], None], batch_size: int
) -> list[Part]:
    """Every part read: by reader processes at once, or one part by this process."""
    if len(parts) > 1:
        return await audit_parts.read_in_processes(log.url, parts, read)
    return [await audit_parts.read_range(log, part, read, batch_size) for part in parts]


def load_parts(con: duckdb.DuckDBPyConnection, parts: list[Part]) -> None:
    """Parse every part into ``events``; check that every row arrived.

    The rows are not kept in sequence order on disk (``ORDER BY seq`` gives it):
    letting DuckDB's threads insert each its own row groups parses faster than in
    order (docs/performance.md). Each row group still holds
    consecutive lines of one part, so filtering on ``seq`` stays cheap."""
    files = [str(p.path) for p in parts if p.events]
    if not files:
        return
    cursor = con.cursor()  # this thread's own cursor on the same database
    kept = cursor.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    try:
        cursor.execute("SET preserve_insertion_order = false")  # the database's, not ours
        found = cursor.execute(_PARSE, {"parts": files}).fetchone()
    finally:
        cursor.execute(f"SET preserve_insertion_order = {bool(kept and kept[0])}")
        cursor.close()
    loaded, written = (found[0] if found else 0), sum(p.events for p in parts)
    if loaded != written:
        raise RuntimeError(f"the export loaded {loaded:,} of the {written:,} events read")


async def export_file(
    log: EventLog, path: Path, *, progress: Progress | None = None, batch_size: int = 8192,
    readers: int | None = None,
) -> Exported:
    """Export into a new DuckDB file at ``path``, replacing it only once complete.
    The part files are written beside it (the directory chosen for the export)."""
    partial = path.with_name(path.name + ".partial")
    for leftover in (partial, partial.with_name(partial.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    try:
        done = await export(log, con, progress=progress, batch_size=batch_size, readers=readers,
                            scratch=path.resolve().parent)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(partial, path)
    return done


# ── The report ──────────────────────────────────────────────────────────────────


def report(con: duckdb.DuckDBPyConnection) -> str:
    """Time to first frame, sessions by outcome, billable minutes by org and tier."""
    con.execute("SET TimeZone = 'UTC'")
    lines: list[str] = []
    found = con.execute("SELECT count(*), coalesce(max(seq), 0) FROM events").fetchone()
    events, last_seq = found if found is not None else (0, 0)
    sessions = _scalar(con, "SELECT count(*) FROM sessions")
    lines.append(f"{events:,} events (to sequence {last_seq:,}), {sessions:,} sessions")

    ttff = con.execute(
        "SELECT count(*), quantile_cont(time_to_first_frame_ms, 0.5), "
        "quantile_cont(time_to_first_frame_ms, 0.9), quantile_cont(time_to_first_frame_ms, 0.99)"
        " FROM sessions WHERE first_frame_at IS NOT NULL").fetchone()
    lines += ["", "Time to first frame (first_frame_at − created_at)"]
    if ttff is None or not ttff[0]:
        lines.append("  no session has reached its first frame")
    else:
        lines.append(_table(["sessions", "p50 ms", "p90 ms", "p99 ms"],
                            [[f"{ttff[0]:,}", *(f"{v:,.1f}" for v in ttff[1:])]], right=4))

    by_status = con.execute(
        "SELECT status, coalesce(failure_code, ''), count(*) AS n FROM sessions "
        "GROUP BY ALL ORDER BY n DESC, status, 2").fetchall()
    lines += ["", "Sessions by final status"]
    lines.append(_table(["status", "failure code", "sessions"],
                        [[s, c, f"{n:,}"] for s, c, n in by_status], right=1))

    billed = con.execute(
        "SELECT u.org_id, coalesce(o.name, ''), u.quality, count(*), sum(u.billable_seconds), "
        "sum(u.minutes), sum(u.credits) FROM usage u LEFT JOIN orgs o USING (org_id) "
        "GROUP BY ALL ORDER BY u.org_id, u.quality").fetchall()
    lines += ["", "Billable minutes by org and tier (claimed sessions; minutes rounded up each)"]
    lines.append(_table(
        ["org", "name", "tier", "sessions", "billable s", "minutes", "credits"],
        [[org, name, tier, f"{n:,}", f"{s:,}", f"{m:,}", _credits(c)]
         for org, name, tier, n, s, m, c in billed], right=4))
    return "\n".join(lines)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _credits(value: object) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".") if value is not None else "0"


def _table(header: list[str], rows: list[list[str]], right: int = 0) -> str:
    """An aligned text table; the last ``right`` columns (figures) are right-aligned."""
    if not rows:
        return "  (none)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    first_right = len(header) - right

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(
            cell.rjust(width) if i >= first_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])
