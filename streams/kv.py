"""Conditional writes to JetStream KV buckets, with nats-py's ways of losing a race
folded into one answer."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


async def create_if_absent(kv: KeyValue, key: str, value: bytes) -> int | None:
    """Write ``key`` if it holds no entry: the new revision, or ``None`` when another
    writer's entry is there. nats-py reports that as a wrong last sequence, or — when its
    follow-up read (telling a delete marker from an entry) finds nothing, as on a cluster
    node behind the winner's write — as key-not-found; both mean: read again."""
    try:
        return int(await kv.create(key, value))
    except (KeyWrongLastSequenceError, KeyNotFoundError):
        return None
