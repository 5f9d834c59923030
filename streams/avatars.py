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

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from domain.events import Event
from streams import subjects
from streams.eventlog import EventLog, decode


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


class BuildJob:
    """An ``avatar.created`` event handed to one worker; ``done()`` once its result is in."""

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.event: Event = decode(msg.data)

    async def done(self) -> None:
        await self._msg.ack()

    async def later(self, delay: float = 1.0) -> None:
        await self._msg.nak(delay=delay)


class BuildQueue:
    def __init__(self, sub: object) -> None:
        self._sub = sub

    @classmethod
    async def open(cls, log: EventLog, ack_wait: float = 30.0) -> BuildQueue:
        config = ConsumerConfig(
            durable_name=subjects.BUILD_CONSUMER, filter_subject=subjects.CREATED_AVATARS,
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait, max_ack_pending=1_000,
        )
        sub = await log.js.pull_subscribe(
            subjects.CREATED_AVATARS, durable=subjects.BUILD_CONSUMER, stream=subjects.STREAM,
            config=config,
        )
        return cls(sub)

    async def next(self, timeout: float = 1.0) -> BuildJob | None:
        try:
            msgs = await self._sub.fetch(1, timeout=timeout)  # type: ignore[attr-defined]
        except (TimeoutError, NatsTimeout):
            return None
        return BuildJob(msgs[0]) if msgs else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()  # type: ignore[attr-defined]
