"""Create rates shared by every API process: a JetStream KV bucket with a TTL.

One key per API key, holding the wall-clock times of its creates in the last window.
A create reads the entry, and writes it back with its own time only if the entry has
not changed since (``update`` on its revision, ``create`` for a first hit): two API
processes counting the same key at once cannot both take the last place; the loser
reads again. The bucket's TTL forgets keys that stopped creating.
"""

from __future__ import annotations

import math

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from protoface.streams import subjects
from protoface.streams.eventlog import UNREACHABLE, LogUnavailable
from protoface.streams.kv import create_if_absent

# Conditional writes lost in a row before the create is let through unmetered (a key
# so contended is already far over any limit only if it is abusive; say so in the log).
MAX_ATTEMPTS = 8

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[float])


class CreateRates:
    def __init__(self, kv: KeyValue, window: float) -> None:
        self._kv = kv
        self.window = window

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int | None = None,
                   window: float = 60.0) -> CreateRates:
        try:
            kv = await js.key_value(subjects.RATES_BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(
                bucket=subjects.RATES_BUCKET, history=1, ttl=2 * window,
                storage=StorageType.FILE, replicas=replicas or subjects.replicas()))
        return cls(kv, window)

    async def hit(self, key_id: str, per_window: int, now: float) -> int | None:
        """Count a create of ``key_id`` at ``now`` (wall clock) if fewer than
        ``per_window`` were made in the window before it; else the seconds until one
        leaves the window (nothing counted)."""
        try:
            for _ in range(MAX_ATTEMPTS):
                outcome = await self._try(key_id, per_window, now)
                if outcome is not _CONFLICT:
                    return outcome  # type: ignore[return-value]
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return None

    async def _try(self, key_id: str, per_window: int, now: float) -> int | object | None:
        try:
            entry = await self._kv.get(key_id)
            revision, hits = entry.revision, _decoder.decode(entry.value or _encoder.encode([]))
        except KeyNotFoundError:
            revision, hits = None, []
        hits = [t for t in hits if t > now - self.window]
        if len(hits) >= per_window:
            return max(1, math.ceil(hits[0] + self.window - now))
        value = _encoder.encode([*hits, now])
        if revision is None:
            created = await create_if_absent(self._kv, key_id, value)
            return _CONFLICT if created is None else None
        try:
            await self._kv.update(key_id, value, last=revision)
        except KeyWrongLastSequenceError:
            return _CONFLICT
        return None


_CONFLICT = object()
