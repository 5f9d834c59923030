"""The session service: load state from the read model, decide, append, read back.

One ``POST /v1/sessions`` flows: controller → :meth:`SessionService.create` →
``domain.billing.require_credit`` + ``domain.org.admit`` + ``domain.session.decide`` →
``EventLog.append`` → wait until the projection has applied it → the public view.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from protoface.api.avatars.service import AvatarService
from protoface.api.capacity import Capacity
from protoface.domain import billing, ids, org, session
from protoface.domain.errors import Rejected
from protoface.domain.session import Session
from protoface.projections.orgs import Principal
from protoface.projections.pagination import Page
from protoface.projections.runner import Projector
from protoface.projections.sessions import Query, SessionsModel
from protoface.projections.usage import UsageModel
from protoface.streams.eventlog import EventLog
from protoface.streams.transact import Stream, create, current_version, transact

log = logging.getLogger("protoface.sessions")


@dataclass(frozen=True, slots=True)
class NewSession:
    """A validated create request, before admission."""

    avatar_id: str
    quality: session.Quality
    idle_timeout_seconds: int
    max_duration_seconds: int | None
    metadata: dict[str, session.MetadataValue]
    transport: session.Transport


class _Group:
    """Creates of one org admitted by one decision: their ids in arrival order, and,
    once decided, which were refused."""

    __slots__ = ("done", "refused", "session_ids")

    def __init__(self) -> None:
        self.session_ids: list[str] = []
        self.refused: dict[str, Rejected] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class SessionService:
    def __init__(
        self, log: EventLog, projector: Projector, model: SessionsModel, capacity: Capacity,
        usage: UsageModel, *, avatars: AvatarService,
    ) -> None:
        self.log = log
        self.projector = projector
        self.model = model
        self.capacity = capacity
        self.usage = usage
        self.avatars = avatars
        self._org_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Admissions this process appended: org → {session id: stream seq}. Those the
        # projection has not applied yet are counted by hand, so the org lock is held
        # only for the conditional append, not for the round trip back through the log.
        self._pending: defaultdict[str, dict[str, int]] = defaultdict(dict)
        # Per org, the group of creates still open for joining (see _admit).
        self._open_groups: dict[str, _Group] = {}

    # ── Commands ────────────────────────────────────────────────────────────────

    async def create(
        self, principal: Principal, request: NewSession, now: datetime, session_id: str
    ) -> Session:
        # Stock, or the org's own ready avatar: 409 avatar_not_ready, else 404.
        await self.avatars.usable(principal, request.avatar_id)
        # No usable credits → 402, before admission: a refused create writes nothing.
        # Not a reservation: sessions that together overdraw are ended by the supervisor.
        credits = self.usage.credits(principal.org.id, billing.month_of(now))
        billing.require_credit(credits, request.quality)
        # Held until the session is in the read model, where the next check counts it.
        with self.capacity.reserve(request.quality, self.model.waiting_tiers()):
            return await self._create(principal, request, now, session_id)

    async def _create(
        self, principal: Principal, request: NewSession, now: datetime, session_id: str
    ) -> Session:
        plan = principal.org.plan_limits
        command = session.Create(
            session_id=session_id, org_id=principal.org.id, now=now,
            avatar_id=request.avatar_id, quality=request.quality,
            idle_timeout_seconds=request.idle_timeout_seconds,
            max_duration_seconds=org.clamp_duration(plan, request.max_duration_seconds),
            metadata=request.metadata, transport=request.transport,
            api_key_id=principal.key_id,
        )
        events = session.decide(command, None, ids.new_event_id)
        await self._admit(principal, session_id, now)
        try:
            # A brand-new session id: its history must be empty (version 0).
            seq = await create(self.log, Stream.session(session_id), events)
            await self.projector.wait_for(seq)
        finally:
            self._pending[principal.org.id].pop(session_id, None)
        log.info("session created", extra={"session_id": session_id, "org_id": principal.org.id})
        return self.model.sessions[session_id]

    async def _admit(self, principal: Principal, session_id: str, now: datetime) -> None:
        """Have this session admitted by the org, in a group with the creates that
        arrive while the org's previous admission is being appended (group commit).

        The first create of a group leads: it waits for the org's lock, closes the
        group and appends one admission for all of it; the others wait for its
        outcome. So a burst of creates costs one conditional append per group, and
        the cap stays exact: the group is decided as a whole, in arrival order.
        """
        org_id = principal.org.id
        group = self._open_groups.get(org_id)
        if group is None or len(group.session_ids) >= org.MAX_GROUP:
            group = _Group()
            self._open_groups[org_id] = group
            group.session_ids.append(session_id)
            async with self._org_locks[org_id]:
                if self._open_groups.get(org_id) is group:
                    del self._open_groups[org_id]  # closed: later creates start a new group
                await self._admit_group(principal, group, now)
        else:
            group.session_ids.append(session_id)
            try:
                await asyncio.shield(group.done)  # our own cancellation leaves the group be
            except asyncio.CancelledError:
                if not group.done.cancelled():
                    raise
                # The leader's request was cancelled before deciding: admit afresh.
                return await self._admit(principal, session_id, now)
        refused = group.refused.get(session_id)
        if refused is not None:
            raise refused

    async def _admit_group(self, principal: Principal, group: _Group, now: datetime) -> None:
        """Decide and append ``group``'s admission (the caller holds the org's lock);
        record each member's outcome and wake them, whatever happens."""
        try:
            admitted = await self._append_admission(principal, group.session_ids, now)
        except asyncio.CancelledError:
            group.done.cancel()
            raise
        except Exception as exc:
            group.done.set_exception(exc)
            group.done.exception()  # retrieved: the leader raises it, members may not exist
            raise
        refusal = principal.org.plan_limits
        for session_id in group.session_ids[admitted:]:
            group.refused[session_id] = org.over_cap(refusal)
        group.done.set_result(None)

    async def _append_admission(
        self, principal: Principal, session_ids: list[str], now: datetime
    ) -> int:
        """Append the admission of the leading ``session_ids`` that fit under the cap,
        conditional on the org's previous admission; return how many it admitted."""
        org_id = principal.org.id
        pending = self._pending[org_id]
        admitted = 0

        async def load() -> tuple[int, int]:
            unseen = sum(1 for seq in pending.values() if seq > self.model.last_seq)
            active = self.model.active_count(org_id, now) + unseen
            version = max(self.model.admission_version.get(org_id, 0), *pending.values(), 0)
            return active, version

        def decide(active: int) -> list[org.Event]:
            nonlocal admitted
            events, admitted = org.decide_group_admission(
                principal.org, session_ids, active, now, ids.new_event_id)
            return events

        # A conflict: another API process admitted a session in this org; catch up.
        done = await transact(self.log, Stream.org_admissions(org_id), load, decide,
                              self.projector.wait_for)
        for session_id in session_ids[:admitted]:
            pending[session_id] = done.version
        return admitted

    async def end(self, principal: Principal, session_id: str, now: datetime) -> Session:
        command = session.RequestEnd(session_id=session_id, now=now, reason="requested")

        async def load() -> tuple[Session, int]:
            state = await self.get(principal, session_id)
            return state, self.model.versions[session_id]

        done = await transact(self.log, Stream.session(session_id), load,
                              lambda state: session.decide(command, state, ids.new_event_id),
                              self.projector.wait_for)
        if done.stored:
            await self.projector.wait_for(done.version)
            log.info("session end requested", extra={"session_id": session_id})
        return self.model.sessions[session_id]

    # ── Queries ─────────────────────────────────────────────────────────────────

    async def get(self, principal: Principal, session_id: str) -> Session:
        found = self.model.get(principal.org.id, session_id)
        if found is None and ids.is_valid(ids.SESSION, session_id):
            # Created through another API process a moment ago? Wait for it.
            version = await current_version(self.log, Stream.session(session_id))
            if version > self.projector.last_seq:
                await self.projector.wait_for(version)
                found = self.model.get(principal.org.id, session_id)
        if found is None:
            raise Rejected("not_found", "session_not_found", f"No session {session_id!r}.",
                           param="session_id")
        return found

    async def page(self, query: Query) -> Page[Session]:
        """A page of the org's sessions, as of its latest session event in the log: a
        session created a moment ago through another API process is in it."""
        version = await current_version(self.log, Stream.org_sessions(query.org_id))
        if version > self.projector.last_seq:
            await self.projector.wait_for(version)
        return self.model.page(query)
