"""The avatar service: uploads, reads, deletes; and which avatar a session may use.

``POST /v1/avatars`` flows: controller → :func:`api.images.check` (off the event loop)
→ the source image into the ``AVATARS`` object store → ``domain.avatar.decide``
(slots) → ``avatar.created`` appended conditionally on the org's previous creation
→ wait until the projection has applied it. A worker builds it later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from protoface.api.avatars.images import CheckedImage
from protoface.domain import avatar, ids
from protoface.domain.avatar import STOCK_AVATARS, Avatar, SourceImage, StockAvatar
from protoface.domain.errors import INVALID, Rejected
from protoface.projections.avatars import AvatarsModel, Listed, Query
from protoface.projections.orgs import Principal
from protoface.projections.pagination import Page
from protoface.projections.runner import Projector
from protoface.streams import subjects
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog
from protoface.streams.transact import Stream, current_version, transact

log = logging.getLogger("protoface.avatars")



@dataclass(frozen=True, slots=True)
class NewAvatar:
    name: str
    runtime_type: str
    image: CheckedImage


class AvatarService:
    def __init__(
        self, log: EventLog, projector: Projector, model: AvatarsModel, store: AvatarStore
    ) -> None:
        self.log = log
        self.projector = projector
        self.model = model
        self.store = store
        self._org_locks: dict[str, asyncio.Lock] = {}

    # ── Commands ────────────────────────────────────────────────────────────────

    async def create(
        self, principal: Principal, request: NewAvatar, now: datetime, avatar_id: str
    ) -> Avatar:
        org_id = principal.org.id
        image = request.image
        source = SourceImage(
            key=subjects.avatar_source_key(avatar_id), sha256=image.sha256,
            size=len(image.data), content_type=image.content_type, width=image.width,
            height=image.height)
        # Decide once before storing anything: a refused upload writes nothing.
        self._decide_create(principal, request, source, now, avatar_id)
        await self.store.put(source.key, image.data)
        try:
            seq = await self._append_created(principal, request, source, now, avatar_id)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.delete(source.key)  # no event names it: do not keep it
            raise
        await self.projector.wait_for(seq)
        log.info("avatar created", extra={"avatar_id": avatar_id, "org_id": org_id})
        return self.model.avatars[avatar_id]

    def _decide_create(
        self, principal: Principal, request: NewAvatar, source: SourceImage, now: datetime,
        avatar_id: str,
    ) -> list[avatar.Event]:
        command = avatar.Create(
            avatar_id=avatar_id, org_id=principal.org.id, now=now, name=request.name,
            runtime_type=request.runtime_type, source=source, plan=principal.org.plan_limits,
            custom_avatars=self.model.custom_count(principal.org.id),
            api_key_id=principal.key_id)
        return avatar.decide(command, None, ids.new_event_id)

    async def _append_created(
        self, principal: Principal, request: NewAvatar, source: SourceImage, now: datetime,
        avatar_id: str,
    ) -> int:
        """Append ``avatar.created`` conditional on the org's last creation: two uploads
        deciding on the same slot count cannot both win (the loser re-reads, re-decides)."""
        org_id = principal.org.id

        async def load() -> tuple[None, int]:
            return None, self.model.creation_version.get(org_id, 0)

        async with self._org_locks.setdefault(org_id, asyncio.Lock()):
            # A conflict: another API process took a slot first; catch up, decide again.
            done = await transact(
                self.log, Stream.avatar_creations(org_id), load,
                lambda _: self._decide_create(principal, request, source, now, avatar_id),
                self.projector.wait_for)
        return done.version

    async def delete(self, principal: Principal, avatar_id: str, now: datetime) -> None:
        """Append ``avatar.deleted``, then purge the stored source and asset."""
        if avatar_id in STOCK_AVATARS:
            raise Rejected(INVALID, "avatar_not_deletable",
                           "Platform stock avatars cannot be deleted.", "avatar_id")
        command = avatar.Delete(avatar_id=avatar_id, org_id=principal.org.id, now=now)

        async def load() -> tuple[Avatar, int]:
            state = await self.get_custom(principal, avatar_id)
            return state, self.model.versions[avatar_id]

        # A conflict: a build result landed meanwhile.
        done = await transact(self.log, Stream.avatar(avatar_id), load,
                              lambda state: avatar.decide(command, state, ids.new_event_id),
                              self.projector.wait_for)
        await self.projector.wait_for(done.version)
        await self.purge(done.state)
        log.info("avatar deleted", extra={"avatar_id": avatar_id, "org_id": principal.org.id})

    async def purge(self, state: Avatar) -> None:
        # The asset key is also purged when no build was recorded yet: a build that was
        # storing it as the delete landed leaves nothing behind (the worker purges too).
        for key in {*state.stored_keys, subjects.avatar_asset_key(state.id)}:
            await self.store.delete(key)

    # ── Queries ─────────────────────────────────────────────────────────────────

    async def get(self, principal: Principal, avatar_id: str) -> Avatar | StockAvatar:
        stock = STOCK_AVATARS.get(avatar_id)
        return stock if stock is not None else await self.get_custom(principal, avatar_id)

    async def get_custom(self, principal: Principal, avatar_id: str) -> Avatar:
        found = self.model.get(principal.org.id, avatar_id)
        if found is None and ids.is_valid(ids.AVATAR, avatar_id):
            # Created through another API process a moment ago? Wait for it.
            version = await current_version(self.log, Stream.avatar(avatar_id))
            if version > self.projector.last_seq:
                await self.projector.wait_for(version)
                found = self.model.get(principal.org.id, avatar_id)
        if found is None:
            raise avatar.not_found(avatar_id)
        return found

    async def usable(self, principal: Principal, avatar_id: str) -> None:
        """Whether a new session may run on ``avatar_id``: stock, or the org's own ready
        avatar (409 ``avatar_not_ready`` while processing or failed; else 404)."""
        if avatar_id in STOCK_AVATARS:
            return
        avatar.require_ready(await self.get_custom(principal, avatar_id))

    def page(self, query: Query) -> Page[Listed]:
        return self.model.page(query)
