"""The supervisor: the process that observes time for sessions whose worker cannot.

* A worker whose registry entry stops changing for ``LOST_AFTER`` heartbeats is
  lost: each of its sessions becomes ``failed`` / ``worker_lost`` (releasing the
  org's concurrency), and its entry is removed so its slots stop counting.
* A session stuck in ``created`` (the API died between its two appends) is failed.
* A running session whose org cannot pay for its next minute is ended with reason
  ``credits_exhausted`` just before its paid minute runs out (``domain.billing``
  decides, from the usage model), and at once if the org is overdrawn.

Every decision is a conditional append, so any number of supervisors may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from protoface.domain import billing, ids, session
from protoface.domain.errors import Rejected
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, LogUnavailable
from protoface.streams.transact import Stream, transact
from protoface.streams.work import WorkerInfo, WorkerRegistry

log = logging.getLogger("protoface.supervisor")

LOST_AFTER = 2.5  # heartbeat intervals without a registry update
STUCK_CREATED = timedelta(seconds=30)
# How long a worker may keep rendering after its session is told to end (its drain).
DRAIN_SECONDS = 2.0


class Supervisor:
    def __init__(
        self, event_log: EventLog, model: SessionsModel, heartbeat_seconds: float = 5.0,
        usage: UsageModel | None = None, stuck_created: timedelta = STUCK_CREATED,
    ) -> None:
        self.log = event_log
        self.model = model
        self.usage = usage  # None: this supervisor does not enforce credits
        self.heartbeat = heartbeat_seconds
        self.stuck_created = stuck_created
        self._seen: dict[str, tuple[int, float]] = {}  # worker → (revision, when it changed)
        # Workers owning sessions that this supervisor has never seen in the registry →
        # when it first met one of their sessions.
        self._unseen: dict[str, float] = {}
        self._registry: WorkerRegistry | None = None

    async def run(self, shutdown: asyncio.Event) -> None:
        self._registry = await WorkerRegistry.open(self.log)
        while not shutdown.is_set():
            with contextlib.suppress(LogUnavailable, TimeoutError):
                await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shutdown.wait(), self.heartbeat / 2)

    def live_workers(self, now: float) -> set[str]:
        limit = LOST_AFTER * self.heartbeat
        return {w for w, (_, changed) in self._seen.items() if now - changed <= limit}

    async def check(self) -> None:
        assert self._registry is not None
        for state in list(self.model.sessions.values()):
            if state.status == "created" and _age(state) > self.stuck_created:
                await self._fail(state.id, session.INTERNAL, "Session creation did not complete.")
        try:
            registered = await self._registry.snapshot()
        except LogUnavailable:  # who is alive is unknown now: decide no loss on it
            log.warning("worker registry unreadable")
        else:
            await self.fail_lost_workers(registered)
        await self.end_out_of_credit()

    async def fail_lost_workers(self, registered: dict[str, tuple[int, WorkerInfo]]) -> None:
        """Fail the sessions of workers whose registry entry stopped changing."""
        assert self._registry is not None
        now = time.monotonic()
        for worker_id, (revision, _info) in registered.items():
            if self._seen.get(worker_id, (None, 0.0))[0] != revision:
                self._seen[worker_id] = (revision, now)
        live = self.live_workers(now)
        owners: set[str] = set()
        for state in list(self.model.sessions.values()):
            if state.status in session.WORKER_OWNED and state.worker_id is not None:
                owners.add(state.worker_id)
                if state.worker_id not in live and self._lost(state.worker_id, now):
                    await self._fail(state.id, session.WORKER_LOST,
                                     "The worker running this session stopped responding.")
        self._unseen = {w: t for w, t in self._unseen.items() if w in owners and w not in live}
        for worker_id in set(self._seen) - live:
            if worker_id in registered:
                await self._registry.leave(worker_id)
                log.warning("worker lost", extra={"worker_id": worker_id})
            self._seen.pop(worker_id, None)

    def _lost(self, worker_id: str, now: float) -> bool:
        """A worker seen before is lost once its entry stopped changing. One never seen
        may not be visible yet: it can claim a session before its first announcement
        reaches the registry, and a new supervisor has seen nobody. It is lost only
        after a whole loss period in which its sessions were met and it never showed."""
        if worker_id in self._seen:
            return True
        first = self._unseen.setdefault(worker_id, now)
        return now - first > LOST_AFTER * self.heartbeat

    async def end_out_of_credit(self) -> None:
        """End every running session whose org has run out of credits."""
        if self.usage is None:
            return
        # Billable seconds lag by up to a heartbeat, the next check is half a heartbeat
        # away, and the worker renders while it drains: end that much before the
        # paid minute runs out, so no unpaid minute starts.
        margin = 1.5 * self.heartbeat + DRAIN_SECONDS
        balances: dict[tuple[str, str], billing.Credits] = {}
        for record in list(self.usage.running()):
            key = (record.org_id, record.month)
            if key not in balances:
                balances[key] = self.usage.credits(*key)
            if billing.out_of_credit(balances[key], record, margin):
                command = session.RequestEnd(session_id=record.session_id,
                                             now=datetime.now(UTC), reason="credits_exhausted")
                if await self._transact(command):
                    log.warning("session out of credits", extra={
                        "session_id": record.session_id, "org_id": record.org_id})

    async def _fail(self, session_id: str, code: str, message: str) -> None:
        command = session.Fail(session_id=session_id, now=datetime.now(UTC), code=code,
                               message=message)
        if await self._transact(command):
            log.warning("session failed", extra={"session_id": session_id, "code": code})

    async def _transact(self, command: session.Command) -> bool:
        """Decide ``command`` on the projected session and append conditionally on its
        version; whether anything was appended."""
        session_id = command.session_id

        async def load() -> tuple[session.Session | None, int]:
            return self.model.sessions.get(session_id), self.model.versions.get(session_id, 0)

        try:
            done = await transact(self.log, Stream.session(session_id), load,
                                  lambda state: session.decide(command, state, ids.new_event_id),
                                  self._catch_up)
        except (Rejected, ConcurrencyConflict):
            return False  # settled by someone else; the next check looks again
        return done.stored

    async def _catch_up(self, version: int) -> None:
        """Give the projection that feeds ``model`` a moment to reach ``version``."""
        for _ in range(20):
            if self.model.last_seq >= version:
                return
            await asyncio.sleep(0.01)


def _age(state: session.Session) -> timedelta:
    return datetime.now(UTC) - state.created_at
