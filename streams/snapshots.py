"""Projection snapshots in a JetStream object store (``PROJECTIONS``).

A snapshot is a read model serialised at a known log sequence. A process that
starts loads it and follows the log from the next sequence, instead of folding
the whole history again; the log stays the truth (a missing or unreadable
snapshot just means a full rebuild).

The processes that save snapshots also take requests to save them *now*
(:meth:`SnapshotStore.answer_save_requests`), so an audit can compare a rebuild with
the live read models whenever it runs, not only once the first periodic save is due.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog

log = logging.getLogger("protoface.streams")

Unsubscribe = Callable[[], Awaitable[None]]
SAVED = b"saved"


class SnapshotStore:
    """``nc`` (and the ``bucket`` it names) is what save requests travel on; a store
    without it only saves and loads."""

    def __init__(self, store: ObjectStore, nc: Client | None = None,
                 bucket: str = subjects.SNAPSHOTS_BUCKET) -> None:
        self._store = store
        self._nc = nc
        self._requests = subjects.snapshot_requests(bucket)

    @classmethod
    async def open(cls, log: EventLog, replicas: int | None = None) -> SnapshotStore:
        try:
            store = await log.js.object_store(subjects.SNAPSHOTS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            store = await log.js.create_object_store(
                subjects.SNAPSHOTS_BUCKET,
                config=ObjectStoreConfig(storage=StorageType.FILE,
                                         replicas=replicas or subjects.replicas()),
            )
        return cls(store, log.nc, subjects.SNAPSHOTS_BUCKET)

    async def save(self, name: str, data: bytes) -> None:
        await self._store.put(name, data)

    async def load(self, name: str) -> bytes | None:
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            result = await self._store.get(name)
            return bytes(result.data) if result.data else None
        return None

    async def request_save(self, timeout: float) -> bool:
        """Ask the running processes to save their live models now; True once one has
        saved them (its reply comes after its save), False when none runs or none
        answered within ``timeout`` seconds."""
        if self._nc is None:
            return False
        try:
            reply = await self._nc.request(self._requests, b"", timeout=timeout)
        except (NoRespondersError, NatsTimeout):
            return False
        return reply.data == SAVED

    async def answer_save_requests(self, save: Callable[[], Awaitable[None]]) -> Unsubscribe:
        """Run ``save`` on every request and reply when it is done (the snapshots
        themselves are in the store; the reply only says whether they were saved)."""
        if self._nc is None:
            raise RuntimeError("this SnapshotStore was opened without a connection")

        async def on_request(msg: Msg) -> None:
            try:
                await save()
                reply = SAVED
            # The callback's edge: nats-py would swallow an error here unanswered, and
            # the requester would wait out its whole timeout; answer that it failed.
            except Exception:
                log.warning("snapshot save on request failed", exc_info=True)
                reply = b"failed"
            if msg.reply:
                await msg.respond(reply)

        subscription = await self._nc.subscribe(self._requests, cb=on_request)
        return subscription.unsubscribe
