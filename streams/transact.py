"""The one transaction every decision goes through: load, decide, append, retry.

This is the Decider's service half (Equinox's ``Transact``): given a :class:`Stream` —
one consistency boundary, the subjects whose last stored sequence an append is
conditional on — a way to load the state with its version, and a pure decision, it

1. loads the state and the version it was folded up to (from the log, or from a read
   model that records the version it applied);
2. decides; no events means "already done", and nothing is written;
3. appends the events conditionally on that version
   (``Nats-Expected-Last-Subject-Sequence`` over the stream's subjects);
4. on a conflict lets the caller's read model catch up with the stream's latest
   version and goes back to 1, at most :data:`ATTEMPTS` times, then raises
   :class:`ConcurrencyConflict`.

Callers never build an :class:`~protoface.streams.eventlog.Expect` themselves: the
consistency boundary is chosen here, by the :class:`Stream` constructors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from protoface.domain.events import Event
from protoface.streams import subjects
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, Expect

S = TypeVar("S")
E = TypeVar("E", bound=Event)

ATTEMPTS = 8  # a conflict means someone else decided meanwhile; 8 in a row is a storm

Load = Callable[[], Awaitable[tuple[S, int]]]
CatchUp = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Stream:
    """One aggregate's consistency boundary in the log."""

    subjects: str  # a subject filter: every event of the aggregate matches it

    @classmethod
    def session(cls, session_id: str) -> Stream:
        return cls(subjects.session_history(session_id))

    @classmethod
    def org(cls, org_id: str) -> Stream:
        return cls(subjects.org_history(org_id))

    @classmethod
    def org_admissions(cls, org_id: str) -> Stream:
        """An org's admissions only: its concurrency cap is decided on these."""
        return cls(subjects.org_admissions(org_id))

    @classmethod
    def org_sessions(cls, org_id: str) -> Stream:
        """Every session of an org (read only: lists wait for its latest version)."""
        return cls(subjects.org_sessions(org_id))

    @classmethod
    def avatar(cls, avatar_id: str) -> Stream:
        return cls(subjects.avatar_history(avatar_id))

    @classmethod
    def avatar_creations(cls, org_id: str) -> Stream:
        """An org's avatar creations only: its custom avatar slots are decided on these."""
        return cls(subjects.org_avatar_creations(org_id))

    @classmethod
    def webhook_endpoint(cls, endpoint_id: str) -> Stream:
        return cls(subjects.webhook_endpoint_history(endpoint_id))


@dataclass(frozen=True, slots=True)
class Transacted(Generic[S, E]):
    """What a transaction decided on and stored: the state it decided on, the events
    (none when the decision was "already done") and the version of the stream after it
    (the loaded version when nothing was stored)."""

    state: S
    events: Sequence[E]
    version: int

    @property
    def stored(self) -> bool:
        return bool(self.events)


async def transact(
    log: EventLog,
    stream: Stream,
    load: Load[S],
    decide: Callable[[S], Sequence[E]],
    catch_up: CatchUp | None = None,
) -> Transacted[S, E]:
    """Load, decide and append conditionally on the loaded version; retry on conflict.

    ``decide`` is pure and may raise the domain's ``Rejected``, which passes through.
    ``catch_up(version)`` runs after a conflict with the stream's latest version, so a
    ``load`` that reads a read model sees what the conflicting writer stored.
    """
    for _ in range(ATTEMPTS):
        state, version = await load()
        events = decide(state)
        if not events:
            return Transacted(state, (), version)
        try:
            seq = await log.append(events, Expect(stream.subjects, version))
        except ConcurrencyConflict:
            if catch_up is not None:
                await catch_up(await log.version(stream.subjects))
            continue
        return Transacted(state, events, seq)
    raise ConcurrencyConflict(f"{stream.subjects}: still conflicting after {ATTEMPTS} attempts")


async def create(log: EventLog, stream: Stream, events: Sequence[Event]) -> int:
    """Append the first events of a new aggregate: only if its stream is still empty.

    A new aggregate's id is fresh (a ULID), so a conflict means a duplicate id and is
    raised, never retried. Returns the stream sequence of the last event."""
    return await log.append(events, Expect(stream.subjects, 0))


def from_log(log: EventLog, stream: Stream, fold: Callable[[list[Any]], S]) -> Load[S]:
    """A ``load`` that folds the aggregate's whole history from the log (the stream's
    subjects hold only its own aggregate's events, so ``fold`` gets those)."""

    async def load() -> tuple[S, int]:
        events, version = await log.load(stream.subjects)
        return fold(events), version

    return load


async def current_version(log: EventLog, stream: Stream) -> int:
    """The stream's latest stored sequence (0 when it is empty)."""
    return await log.version(stream.subjects)
