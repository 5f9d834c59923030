"""Loading an avatar for a session: its built asset, and which renderer draws it."""

from __future__ import annotations

import asyncio
import hashlib
import zlib

from domain import avatar
from domain.avatar import STOCK_AVATARS
from domain.session import Session
from streams import subjects
from streams.avatars import AvatarStore
from streams.eventlog import EventLog
from worker import rig
from worker.pipeline import Renderer
from worker.render_mock import MockRenderer
from worker.tiers import TIERS


class AvatarNotAvailable(Exception):
    pass


async def load_asset(event_log: EventLog, store: AvatarStore, avatar_id: str) -> bytes:
    """The built asset of ``avatar_id``: a stock one from the worker's own portraits, a
    custom one from the object store under the key its ``avatar.built`` event names."""
    if avatar_id in STOCK_AVATARS:
        return await asyncio.to_thread(rig.stock_asset, avatar_id)
    events, _ = await event_log.load(subjects.avatar_history(avatar_id))
    state = avatar.fold(events)
    if state is None or state.status != "ready" or state.asset_key is None:
        raise AvatarNotAvailable(f"avatar {avatar_id} is not ready")
    data = await store.get(state.asset_key)
    if data is None or hashlib.sha256(data).hexdigest() != state.asset_sha256:
        raise AvatarNotAvailable(f"the built asset of avatar {avatar_id} is missing")
    return data


def renderer_for(state: Session, asset: bytes) -> Renderer:
    """The renderer for this session's avatar at its tier (deterministic per session)."""
    rig.load_asset(asset)  # a corrupt asset fails the session (avatar_load_failed) here
    tier = TIERS[state.quality]
    return MockRenderer(tier.width, tier.height, seed=zlib.crc32(state.id.encode()))
