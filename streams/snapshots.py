"""Projection snapshots in a JetStream object store (``PROJECTIONS``).

A snapshot is a read model serialised at a known log sequence. A process that
starts loads it and follows the log from the next sequence, instead of folding
the whole history again; the log stays the truth (a missing or unreadable
snapshot just means a full rebuild).
"""

from __future__ import annotations

import contextlib

from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog


class SnapshotStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

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
        return cls(store)

    async def save(self, name: str, data: bytes) -> None:
        await self._store.put(name, data)

    async def load(self, name: str) -> bytes | None:
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            result = await self._store.get(name)
            return bytes(result.data) if result.data else None
        return None
