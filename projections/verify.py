"""Rebuild-equals-live, checked on a running system: ``protoface audit verify``.

"Live" is what the running system serves from: the snapshots its processes save to
the ``PROJECTIONS`` object store (``projections.snapshots``), each a whole read
model at the last sequence it applied. :func:`verify_live` first asks the running
API processes to save theirs now (they answer on core NATS once saved), so a
deployment of any age has snapshots to compare, not only one past its first
periodic save. For every model kind, the model is rebuilt from sequence 1 up to
*that snapshot's own* sequence (one read of the log serves every kind) and the two
are compared on ``export()``, field by field. Nothing reaches into an API process's
memory, and new kinds registered in ``snapshots.NAMES`` are checked without a
change here.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protoface.projections import snapshots
from protoface.projections.runner import Model
from protoface.streams.eventlog import EventLog
from protoface.streams.snapshots import SnapshotStore

# (sequence rebuilt to, sequence to rebuild to); not ``projections.audit``'s alias:
# that module loads DuckDB, which every command would then load with the parser.
Progress = Callable[[int, int], None]


@dataclass
class Check:
    """One model kind: its snapshot against a rebuild to the same sequence."""

    name: str
    snapshot_seq: int | None = None  # None: no snapshot, or one that does not decode
    differences: list[str] = field(default_factory=list)  # the first few
    total: int = 0  # differences in all
    note: str = ""

    @property
    def compared(self) -> bool:
        return self.snapshot_seq is not None

    @property
    def ok(self) -> bool:
        return self.total == 0


async def verify_live(
    log: EventLog, store: SnapshotStore, *, wait: float, limit: int = 5,
    progress: Progress | None = None,
) -> tuple[bool, list[Check]]:
    """:func:`verify` after asking the running processes to save their live models now
    (waiting ``wait`` seconds for one to have saved them): an audit verifies whenever it
    is asked, not only once the first periodic snapshot is due. True first when a live
    process saved; otherwise the last saved snapshots, if any, are what is compared."""
    saved = await store.request_save(wait)
    return saved, await verify(log, store, limit=limit, progress=progress)


async def verify(
    log: EventLog, store: SnapshotStore, *, limit: int = 5, progress: Progress | None = None,
) -> list[Check]:
    """Compare every saved snapshot with a rebuild from sequence 1 to its sequence; a
    kind with no snapshot is rebuilt to the log's end (it must fold without error) and
    passes with a note, as there is nothing live to compare it with."""
    saved = {name: await store.load(name) for name in snapshots.NAMES.values()}
    # The log's end is read after the snapshots, so a snapshot past it is truly wrong
    # (not one a running process saved after we looked at the log).
    end = await log.last_seq()
    checks: list[Check] = []
    rebuilds: dict[str, tuple[Check, Model | None, Model]] = {}  # name → check, snapshot, rebuild
    for kind, name in snapshots.NAMES.items():
        check = Check(name)
        checks.append(check)
        snapshot = _snapshot(saved[name], kind, check, end)
        if check.ok:
            rebuilds[name] = (check, snapshot, kind())
    caps = [(_cap(snapshot, end), model) for _, snapshot, model in rebuilds.values()]
    await _rebuild(log, caps, progress)
    for check, snapshot, rebuild in rebuilds.values():
        if snapshot is None:
            check.note = (f"no snapshot saved: rebuilt from the log to sequence {end:,} "
                          f"without error, nothing live to compare it with")
            continue
        found = differences(_exported(snapshot), _exported(rebuild))
        check.differences = list(itertools.islice(found, limit))
        check.total = len(check.differences) + sum(1 for _ in found)
    return checks


def _snapshot(data: bytes | None, kind: type, check: Check, end: int) -> Model | None:
    """The saved model of ``kind`` (None if there is none); one that does not decode or
    runs past the log's ``end`` is recorded on ``check`` as a difference."""
    if data is None:
        return None
    try:
        model: Model = msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        check.differences.append(f"the snapshot does not decode as {kind.__name__}: {exc}")
        check.total = 1
        return None
    check.snapshot_seq = model.last_seq
    if model.last_seq > end:
        check.differences.append(
            f"last_seq: the snapshot claims sequence {model.last_seq:,}, "
            f"the log ends at {end:,}")
        check.total = 1
    return model


def _cap(snapshot: Model | None, end: int) -> int:
    """How far to rebuild: to the snapshot's own sequence, or the whole log without one."""
    return snapshot.last_seq if snapshot is not None else end


async def _rebuild(
    log: EventLog, caps: list[tuple[int, Model]], progress: Progress | None
) -> None:
    """Fold the log into every model up to its cap, in one read of the log."""
    top = max((cap for cap, _ in caps), default=0)
    if top == 0:
        return
    async with contextlib.aclosing(log.replay_raw(1, until=top)) as batches:
        async for batch in batches:
            for stored in batch.decoded():
                for cap, rebuild in caps:
                    if stored.seq <= cap:
                        rebuild.apply(stored.seq, stored.event)
            if progress is not None and len(batch):
                progress(batch.seqs[-1], top)


def _exported(model: Model) -> object:
    """What rebuild-equals-live compares: the model's ``export()``, else all its fields."""
    export = getattr(model, "export", None)
    return export() if callable(export) else msgspec.to_builtins(model)


def differences(live: Any, rebuilt: Any, path: str = "") -> Iterator[str]:
    """Where ``live`` (the snapshot) and ``rebuilt`` differ, one line per leaf, in order."""
    if live == rebuilt:
        return
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        for key in sorted(live.keys() | rebuilt.keys(), key=str):
            where = f"{path}[{key}]" if path else str(key)
            if key not in rebuilt:
                yield f"{where}: only in the snapshot ({_short(live[key])})"
            elif key not in live:
                yield f"{where}: only in the rebuild ({_short(rebuilt[key])})"
            else:
                yield from differences(live[key], rebuilt[key], where)
    elif isinstance(live, msgspec.Struct) and type(live) is type(rebuilt):
        for name in live.__struct_fields__:
            yield from differences(getattr(live, name), getattr(rebuilt, name), f"{path}.{name}")
    elif (isinstance(live, list | tuple) and isinstance(rebuilt, list | tuple)
          and len(live) == len(rebuilt)):
        for i, (a, b) in enumerate(zip(live, rebuilt, strict=True)):
            yield from differences(a, b, f"{path}[{i}]")
    else:
        yield f"{path}: snapshot {_short(live)}, rebuild {_short(rebuilt)}"


def _short(value: Any, width: int = 80) -> str:
    text = repr(msgspec.to_builtins(value)) if isinstance(value, msgspec.Struct) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
