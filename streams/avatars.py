"""Avatar images and builds on JetStream.

* :class:`AvatarStore`: the ``AVATARS`` object store holding each custom avatar's
  uploaded source image and its built asset, under the keys its events name
  (``subjects.avatar_source_key`` / ``avatar_asset_key``). Deleting an object purges
  its chunks from the stream, so a deleted avatar's bytes are gone, not hidden.
* :class:`BuildQueue`: a durable pull consumer on ``avatar.created`` shared by every
  worker. A job is acked once its result is recorded; a worker that dies mid-build
  lets it be redelivered after ``ack_wait`` (builds are idempotent on the avatar).
"""

from __future__ import annotations

import contextlib

from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from protoface.streams.work import EventQueue


class AvatarStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    @classmethod
    async def open(cls, log: EventLog, replicas: int = 1) -> AvatarStore:
        try:
            store = await log.js.object_store(subjects.AVATARS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            store = await log.js.create_object_store(
                subjects.AVATARS_BUCKET,
                config=ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas),
            )
        return cls(store)

    async def put(self, key: str, data: bytes) -> None:
        await self._store.put(key, data)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none (never stored, or deleted)."""
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            result = await self._store.get(key)
            return bytes(result.data or b"")
        return None

    async def exists(self, key: str) -> bool:
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            await self._store.get_info(key)
            return True
        return False

    async def delete(self, key: str) -> None:
        """Remove the object and purge its chunks; a missing object is already gone."""
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            await self._store.delete(key)


class BuildQueue(EventQueue):
    """``avatar.created`` events: acked once the build's result is in the log."""

    durable = subjects.BUILD_CONSUMER
    subject = subjects.CREATED_AVATARS
    ack_wait = 30.0
    max_ack_pending = 1_000
