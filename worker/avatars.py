"""Loading an avatar for a session: its built asset, and which renderer draws it."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import cache

from protoface.domain import avatar as avatars
from protoface.domain.avatar import STOCK_AVATARS
from protoface.domain.session import Session
from protoface.domain.tiers import TIERS
from protoface.streams import subjects
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog
from protoface.worker.face.features import FaceParams
from protoface.worker.pipeline import Renderer
from protoface.worker.render import rig
from protoface.worker.render.batcher import BatchedRenderer, frame_clock
from protoface.worker.render.mock import MockRenderer
from protoface.worker.render.renderer import AvatarModel, TierModel, tier_model


class AvatarNotAvailable(Exception):
    pass


async def load_asset(event_log: EventLog, store: AvatarStore, avatar_id: str) -> bytes:
    """The built asset of ``avatar_id``: a stock one from the worker's own portraits, a
    custom one from the object store under the key its ``avatar.built`` event names."""
    if avatar_id in STOCK_AVATARS:
        return await asyncio.to_thread(rig.stock_asset, avatar_id)
    events, _ = await event_log.load(subjects.avatar_history(avatar_id))
    state = avatars.fold(events)
    if state is None or state.status != "ready" or state.asset_key is None:
        raise AvatarNotAvailable(f"avatar {avatar_id} is not ready")
    data = await store.get(state.asset_key)
    if data is None or hashlib.sha256(data).hexdigest() != state.asset_sha256:
        raise AvatarNotAvailable(f"the built asset of avatar {avatar_id} is missing")
    return data


WARM_UP_RENDERS = 2


@cache
def _preparing() -> Executor:
    """Avatars are built and prepared here, never on the event loop (it paces sessions)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-prep")


def _prepare(model: TierModel, avatar_id: str, asset: bytes | None) -> AvatarModel:
    avatar = model.avatar(asset if asset is not None else rig.stock_asset(avatar_id))
    # Frames rendered here warm torch's first-call paths, so the session's first tick is
    # not a slow one: TorchScript profiles the kernel's first two calls (~60 ms each at
    # lite) and runs it optimised from the third.
    for _ in range(WARM_UP_RENDERS):
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
    if asset is not None:
        rig.load_asset(asset)  # a corrupt asset fails the session (avatar_load_failed) here
    tier = TIERS[state.quality]
    if tier.name == "mock":
        return MockRenderer(tier.width, tier.height, seed=zlib.crc32(state.id.encode()))
    model = tier_model(tier)
    clock = frame_clock(tier.name, tier.fps, model.render_many)
    prepared = asyncio.get_running_loop().run_in_executor(
        _preparing(), _prepare, model, state.avatar_id, asset)
    return BatchedRenderer(clock, prepared, model.width, model.height, model.render_many)
