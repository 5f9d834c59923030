"""Idempotency keys in a JetStream KV bucket with a 24 h TTL.

JetStream's own de-duplication window is kept short (minutes), so keys live here:
``(org, key) → request fingerprint, state, response`` written with create-only
semantics, so two concurrent requests with one key cannot both proceed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from protoface.streams import subjects
from protoface.streams.eventlog import UNREACHABLE, LogUnavailable
from protoface.streams.kv import create_if_absent

TTL_SECONDS = 24 * 3600
PENDING_LEASE_SECONDS = 30.0


class Record(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    state: str  # "pending" while the first request runs, then "done"
    # When a pending claim was taken (wall clock): one older than PENDING_LEASE_SECONDS
    # belongs to a request that died or could not release it (the log was down), and a
    # retry takes it over instead of waiting on it for 24 h.
    claimed_at: float = 0.0
    status: int = 0
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request owns the key: run it, then :meth:`IdempotencyStore.complete`."""

    key: str
    revision: int


@dataclass(frozen=True, slots=True)
class Existing:
    """Another request already used the key."""

    record: Record


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


class IdempotencyStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int | None = None) -> IdempotencyStore:
        try:
            kv = await js.key_value(subjects.IDEMPOTENCY_BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=subjects.IDEMPOTENCY_BUCKET, history=1, ttl=TTL_SECONDS,
                    storage=StorageType.FILE, replicas=replicas or subjects.replicas(),
                )
            )
        return cls(kv)

    @staticmethod
    def storage_key(scope: str, key: str) -> str:
        # Client keys are arbitrary strings; KV keys are not. Hash scope and key.
        return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claimed | Existing:
        try:
            return await self._claim(self.storage_key(scope, key), fingerprint)
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc

    async def _claim(self, storage_key: str, fingerprint: str) -> Claimed | Existing:
        pending = _encoder.encode(Record(fingerprint=fingerprint, state="pending",
                                         claimed_at=time.time()))
        revision = await create_if_absent(self._kv, storage_key, pending)
        if revision is not None:
            return Claimed(storage_key, revision)
        try:
            entry = await self._kv.get(storage_key)
        except KeyNotFoundError:
            # Released between our create and get: try once more.
            return await self._claim(storage_key, fingerprint)
        assert entry.value is not None
        record = _decoder.decode(entry.value)
        if record.state == "pending" and time.time() - record.claimed_at > PENDING_LEASE_SECONDS:
            try:  # an abandoned claim: take it over (conditionally, so only one retry does)
                revision = await self._kv.update(storage_key, pending, last=entry.revision)
                return Claimed(storage_key, revision)
            except KeyWrongLastSequenceError:
                return await self._claim(storage_key, fingerprint)
        return Existing(record)

    async def get(self, scope: str, key: str) -> Record | None:
        try:
            entry = await self._kv.get(self.storage_key(scope, key))
        except KeyNotFoundError:
            return None
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return _decoder.decode(entry.value) if entry.value else None

    async def complete(self, claimed: Claimed, fingerprint: str, status: int, body: bytes) -> None:
        record = Record(fingerprint=fingerprint, state="done", status=status, body=body)
        try:
            await self._kv.update(claimed.key, _encoder.encode(record), last=claimed.revision)
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc

    async def release(self, claimed: Claimed) -> None:
        """Forget the key (the request failed in a way a retry should repeat). If the
        store cannot be reached the claim stays pending until its lease runs out."""
        try:
            await self._kv.delete(claimed.key, last=claimed.revision)
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
