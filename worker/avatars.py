"""Loading an avatar for a session: which renderer draws it."""

from __future__ import annotations

import zlib

from domain.avatar import STOCK_AVATARS
from domain.session import Session
from worker.pipeline import Renderer
from worker.render_mock import MockRenderer
from worker.tiers import TIERS


class AvatarNotAvailable(Exception):
    pass


def renderer_for(state: Session) -> Renderer:
    """The renderer for this session's avatar at its tier (deterministic per session)."""
    if state.avatar_id not in STOCK_AVATARS:
        raise AvatarNotAvailable(f"avatar {state.avatar_id} is not available on this worker")
    tier = TIERS[state.quality]
    return MockRenderer(tier.width, tier.height, seed=zlib.crc32(state.id.encode()))
