"""Loading an avatar for a session: which renderer draws it."""

from __future__ import annotations

import zlib

from domain.avatar import STOCK_AVATARS
from domain.session import Session
from worker.batcher import SharedRenderer, frame_clock
from worker.pipeline import Renderer
from worker.render_mock import MockRenderer
from worker.render_torch import AvatarModel, tier_model
from worker.rig import stock_asset
from worker.tiers import TIERS


class AvatarNotAvailable(Exception):
    pass


def renderer_for(state: Session, asset: bytes | None = None) -> Renderer:
    """The renderer for this session's avatar at its tier.

    ``mock`` draws a test pattern; the other tiers run the torch model, batched with
    every other session of the tier on this worker. ``asset`` is the built avatar
    (stock avatars are built from the portraits the worker ships when it is not given).
    """
    if asset is None and state.avatar_id not in STOCK_AVATARS:
        raise AvatarNotAvailable(f"avatar {state.avatar_id} is not available on this worker")
    tier = TIERS[state.quality]
    if tier.name == "mock":
        return MockRenderer(tier.width, tier.height, seed=zlib.crc32(state.id.encode()))
    asset = asset or stock_asset(state.avatar_id)
    model = tier_model(tier)
    clock = frame_clock(tier.name, tier.fps, model.render_many)
    avatar: AvatarModel = model.avatar(asset)
    return SharedRenderer(clock, avatar, model.width, model.height, model.render_many)
