"""A lease: one holder at a time for a role that must run once per deployment.

The webhook dispatcher runs in as many processes as you like; only the lease holder
delivers, the others stand by. The lease is a key in a KV bucket whose entries expire
after ``ttl`` seconds: taken with a create (fails while someone holds it), kept by
updates conditional on the revision we last wrote (fails once someone else took it),
and given back with a conditional delete. A holder that dies stops renewing and the
key expires, so a standby takes over within ``ttl``.

A holder that is cut off from NATS but still running may overlap its successor for
up to one renewal period: deliveries are at-least-once (receivers de-duplicate on the
stable ``webhook-id``), so an overlap can repeat a POST but never lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyValueError
from nats.js.kv import KeyValue

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog

log = logging.getLogger("protoface.lease")


class Lease:
    def __init__(self, kv: KeyValue, role: str, holder: str, ttl: float) -> None:
        self._kv = kv
        self.role = role
        self.holder = holder
        self.ttl = ttl
        self._revision: int | None = None

    @classmethod
    async def open(
        cls, event_log: EventLog, role: str, holder: str, *, ttl: float = 10.0,
        replicas: int = 1,
    ) -> Lease:
        try:
            kv = await event_log.js.key_value(subjects.LEASES_BUCKET)
        except BucketNotFoundError:
            kv = await event_log.js.create_key_value(KeyValueConfig(
                bucket=subjects.LEASES_BUCKET, history=1, storage=StorageType.FILE,
                replicas=replicas, ttl=ttl,
            ))
        # The bucket's expiry is the lease's length, whoever created the bucket.
        status = await kv.status()
        return cls(kv, role, holder, status.ttl or ttl)

    @property
    def held(self) -> bool:
        return self._revision is not None

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or its holder stopped renewing)."""
        try:
            self._revision = await self._kv.create(self.role, self.holder.encode())
        except (KeyValueError, NatsError, TimeoutError):
            self._revision = None
        return self.held

    async def renew(self) -> bool:
        """Keep the lease; False once it was lost (expired and taken by another)."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(
                self.role, self.holder.encode(), last=self._revision)
        except (KeyValueError, NatsError, TimeoutError):
            # Taken by another, or NATS unreachable: either way we can no longer
            # know we hold it, so we stop acting as the holder.
            self._revision = None
        return self.held

    async def release(self) -> None:
        if self._revision is None:
            return
        with contextlib.suppress(KeyValueError, NatsError, TimeoutError):
            await self._kv.delete(self.role, last=self._revision)
        self._revision = None

    async def hold(self, stop: asyncio.Event) -> None:
        """Wait until the lease is ours (or ``stop``)."""
        while not stop.is_set() and not await self.acquire():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 4)

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until ``stop`` or until the lease is lost (then return)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3)
            if stop.is_set():
                return
            if not await self.renew():
                log.warning("lease lost", extra={"role": self.role})
                return


async def webhook_dispatcher_lease(event_log: EventLog, holder: str) -> Lease:
    """The lease of the webhook dispatcher role (one active per deployment)."""
    return await Lease.open(event_log, subjects.WEBHOOK_DISPATCHER_LEASE, holder)
