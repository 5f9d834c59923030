"""Loading an avatar for a session: which renderer draws it."""

from __future__ import annotations

import asyncio
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import cache

from domain.avatar import STOCK_AVATARS
from domain.session import Session
from worker.batcher import SharedRenderer, frame_clock
from worker.features import FaceParams
from worker.pipeline import Renderer
from worker.render_mock import MockRenderer
from worker.render_torch import AvatarModel, TierModel, tier_model
from worker.rig import stock_asset
from worker.tiers import TIERS


class AvatarNotAvailable(Exception):
    pass


@cache
def _preparing() -> Executor:
    """Avatars are built and prepared here, never on the event loop (it paces sessions)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-prep")


def _prepare(model: TierModel, avatar_id: str, asset: bytes | None) -> AvatarModel:
    avatar = model.avatar(asset if asset is not None else stock_asset(avatar_id))
    # One frame rendered here warms torch's first-call paths, so the session's first
    # tick is not the slow one.
    model.render_many([(avatar, FaceParams(0.0, False))])
    return avatar


def renderer_for(state: Session, asset: bytes | None = None) -> Renderer:
    """The renderer for this session's avatar at its tier.

    ``mock`` draws a test pattern; the other tiers run the torch model, batched with
    every other session of the tier on this worker. ``asset`` is the built avatar
    (stock avatars are built from the portraits the worker ships when it is not given);
    it is prepared on a thread while the session's first ticks go out without video.
    """
    if asset is None and state.avatar_id not in STOCK_AVATARS:
        raise AvatarNotAvailable(f"avatar {state.avatar_id} is not available on this worker")
    tier = TIERS[state.quality]
    if tier.name == "mock":
        return MockRenderer(tier.width, tier.height, seed=zlib.crc32(state.id.encode()))
    model = tier_model(tier)
    clock = frame_clock(tier.name, tier.fps, model.render_many)
    prepared = asyncio.get_running_loop().run_in_executor(
        _preparing(), _prepare, model, state.avatar_id, asset)
    return SharedRenderer(clock, prepared, model.width, model.height, model.render_many)
