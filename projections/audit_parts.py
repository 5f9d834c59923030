"""The audit export's read: ranges of the log, each read by its own process into a part file.

nats-py parses every message in Python, so one reader is one busy
core and the export can go no faster than that. The export therefore splits the
sequences ``[1, end]`` into consecutive ranges, one per *reader process*; each opens
its own connection, reads its range with the log's bulk path
(:meth:`EventLog.replay_raw` from its first sequence to its last) and writes it, as it
arrives, to a part file: one line per event, ``seq<TAB>stored JSON``. Once all are
read, DuckDB reads the parts (``read_csv``, on all cores) and parses them in one pass
(:func:`projections.audit.load_parts`). The stored JSON is compact JSON written by msgspec,
which escapes every control character inside strings, so a raw tab or newline cannot
occur in it; the loader still checks that it read back exactly as many rows as were
written.

A reader process is a fresh interpreter (``python -m projections.audit_reader``), not
a ``multiprocessing`` child: spawn re-imports the parent's ``__main__`` in every child
(the composition root imports torch and the whole app), and fork after an event loop with threads is
unsafe. It imports only the standard library, uvloop and :mod:`streams.eventlog`,
since its startup counts in the export's time, and it connects with
:meth:`EventLog.open_for_replay` (no header parsing). It reports progress on its stdout
(``+N`` per batch written) and ends with ``= events last_seq cpu_seconds``; exit
status 3 means the log could not be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from protoface.streams.eventlog import UNREACHABLE, EventLog, LogUnavailable, RawBatch

# The default gives each reader at least this many events: a reader process's startup
# (worth tens of thousands of events' reading) should stay a small share of its work.
MIN_EVENTS_PER_READER = 100_000
UNAVAILABLE = 3  # a reader's exit status when the log could not be read
_ROOT = Path(__file__).resolve().parent.parent  # the package's root, for the readers' path


def readers_for(events: int) -> int:
    """The default: one reader per core (each is one busy Python thread), but no more
    than one per ``MIN_EVENTS_PER_READER`` events."""
    cores = max(1, min(os.cpu_count() or 1, 8))
    return max(1, min(cores, -(-events // MIN_EVENTS_PER_READER)))


def split(first: int, last: int, readers: int) -> list[tuple[int, int]]:
    """``[first, last]`` as consecutive inclusive ranges, one per reader, that differ in
    size by at most one: no gap, no overlap; fewer ranges than readers when there are
    fewer sequences, none when ``first > last``."""
    count = last - first + 1
    if count <= 0:
        return []
    parts = max(1, min(readers, count))
    size, extra = divmod(count, parts)
    ranges: list[tuple[int, int]] = []
    start = first
    for n in range(parts):
        end = start + size - 1 + (1 if n < extra else 0)
        ranges.append((start, end))
        start = end + 1
    return ranges


@dataclass(frozen=True, slots=True)
class Part:
    """What one reader read: its range, the part file it wrote, and what it cost."""

    first: int
    last: int
    path: Path
    events: int = 0
    last_seq: int = 0  # the last sequence read (0: none)
    cpu_seconds: float = 0.0  # the reader process's CPU (0 when read in this process)


def write(out: BinaryIO, batch: RawBatch) -> None:
    """One line per event, ``seq<TAB>stored JSON``, in one write per batch."""
    out.write(b"".join([b"%d\t%s\n" % row for row in zip(batch.seqs, batch.data, strict=True)]))


async def read_range(
    log: EventLog, part: Part, on_batch: Callable[[int], None] | None = None,
    batch_size: int = 8192,
) -> Part:
    """Read ``[part.first, part.last]`` into ``part.path``; ``on_batch(n)`` after each batch."""
    events, last = 0, 0
    with part.path.open("wb") as out:
        async with contextlib.aclosing(
            log.replay_raw(part.first, until=part.last, batch_size=batch_size)
        ) as batches:
            async for batch in batches:
                write(out, batch)
                events += len(batch)
                last = batch.seqs[-1]
                if on_batch is not None:
                    on_batch(len(batch))
    return Part(part.first, part.last, part.path, events, last)


async def read_in_processes(
    url: str, parts: list[Part], on_batch: Callable[[int], None] | None = None,
) -> list[Part]:
    """Read every part in its own reader process, all at once; the parts as read, in order.

    Raises :class:`LogUnavailable` when a reader could not read the log, RuntimeError
    when one failed otherwise; the other readers are stopped then.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    procs: list[asyncio.subprocess.Process] = []
    follows: list[asyncio.Future[Part]] = []
    try:
        for part in parts:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "protoface.projections.audit_reader", str(part.first),
                str(part.last), str(part.path), env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(f"{url}\n".encode())  # not on the command line: credentials
            proc.stdin.close()
        follows = [asyncio.ensure_future(_follow(proc, part, on_batch))
                   for proc, part in zip(procs, parts, strict=True)]
        return list(await asyncio.gather(*follows))
    finally:  # a reader failed, or the export was stopped: stop the others
        for follow in follows:
            follow.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*follows, return_exceptions=True)


async def _follow(
    proc: asyncio.subprocess.Process, part: Part, on_batch: Callable[[int], None] | None,
) -> Part:
    """A reader's progress lines until it exits; its result, or its error raised."""
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    result: list[str] = []
    async for line in proc.stdout:
        if line.startswith(b"+"):
            if on_batch is not None:
                on_batch(int(line[1:]))
        elif line.startswith(b"="):
            result = line[1:].decode().split()
    status = await proc.wait()
    stderr = (await errors).decode(errors="replace").strip()
    if status == UNAVAILABLE:
        raise LogUnavailable(f"reader of {part.first}..{part.last}: {stderr}")
    if status != 0 or len(result) != 3:
        raise RuntimeError(f"reader of {part.first}..{part.last} exited with {status}: "
                           f"{stderr[-2000:]}")
    events, last, cpu = result
    return Part(part.first, part.last, part.path, int(events), int(last), float(cpu))


# ── The reader process (projections.audit_reader) ────────────────────────────────


CONNECT_SECONDS = 10.0  # the parent just read the log: a reader that cannot, gives up


async def _read(url: str, part: Part) -> Part:
    # The client retries a first connection forever: bound it, so a reader cannot hang.
    log = await asyncio.wait_for(
        EventLog.open_for_replay(url, name="protoface-audit-reader"), CONNECT_SECONDS)
    try:
        return await read_range(log, part, _report_batch)
    finally:
        await log.close()


def _report_batch(n: int) -> None:
    sys.stdout.write(f"+{n}\n")
    sys.stdout.flush()


def main(url: str, argv: list[str]) -> int:
    import uvloop  # the reader's loop: libuv reads the socket for less CPU than asyncio's

    first, last, path = argv
    # A part file that cannot be written is not the log's fault (OSError is among the
    # log's UNREACHABLE errors): fail on it, with its traceback, before connecting.
    Path(path).open("wb").close()
    try:
        done = uvloop.run(_read(url, Part(int(first), int(last), Path(path))))
    except (LogUnavailable, *UNREACHABLE) as exc:
        print(f"the event log is unavailable: {type(exc).__name__} {exc}", file=sys.stderr)
        return UNAVAILABLE
    sys.stdout.write(f"= {done.events} {done.last_seq} {time.process_time():.6f}\n")
    sys.stdout.flush()
    return 0

