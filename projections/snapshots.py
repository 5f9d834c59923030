"""Saving and restoring read models, so a restart folds only the log's tail.

Each model is a plain dataclass of msgspec-encodable values, serialised whole
together with the last sequence it applied; restoring it and following the log
from the next sequence gives exactly the model a full rebuild gives (tested).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TypeVar

import msgspec

from protoface.projections.avatars import AvatarsModel
from protoface.projections.orgs import OrgsModel
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.streams.snapshots import SnapshotStore, Unsubscribe

log = logging.getLogger("protoface.projections")

M = TypeVar("M", SessionsModel, OrgsModel, UsageModel, AvatarsModel)
Snapshotted = SessionsModel | OrgsModel | UsageModel | AvatarsModel

NAMES: dict[type, str] = {
    SessionsModel: "sessions.v1", OrgsModel: "orgs.v1", UsageModel: "usage.v1",
    AvatarsModel: "avatars.v1",
}
_encoder = msgspec.msgpack.Encoder()


async def restore(store: SnapshotStore, kind: type[M]) -> M:
    """The saved model, or an empty one if there is none or it cannot be read."""
    data = await store.load(NAMES[kind])
    if data is None:
        return kind()
    try:
        return msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("snapshot unreadable: rebuilding from the log", extra={"model": NAMES[kind]})
        return kind()


async def save(store: SnapshotStore, model: Snapshotted) -> None:
    # Encoding runs without an await, so it captures one consistent state at last_seq.
    await store.save(NAMES[type(model)], _encoder.encode(model))


async def save_all(store: SnapshotStore, models: list[Snapshotted]) -> None:
    for model in models:
        await save(store, model)


async def save_on_request(store: SnapshotStore, models: list[Snapshotted]) -> Unsubscribe:
    """Save ``models`` whenever asked (``protoface audit verify`` asks before comparing),
    so the live models can be checked however young the process is."""
    return await store.answer_save_requests(lambda: save_all(store, models))


async def save_periodically(
    store: SnapshotStore, models: list[Snapshotted], every: float
) -> None:
    saved: dict[str, int] = {}
    while True:
        await asyncio.sleep(every)
        for model in models:
            name = NAMES[type(model)]
            if saved.get(name) != model.last_seq:
                with contextlib.suppress(Exception):
                    await save(store, model)
                    saved[name] = model.last_seq
