"""``Idempotency-Key`` on POST: the first response is replayed for 24 h.

Same key and same body → the stored response with ``Idempotent-Replayed: true``;
same key and another body → 409 ``idempotency_key_reused``. Concurrent duplicates
wait for the first to finish, so one key makes one session. Only successes are
stored: an error leaves the key free, so a retry runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import msgspec

from protoface.api.errors import ApiError, invalid
from protoface.streams.idempotency import Claimed, IdempotencyStore, Record

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
WAIT_FOR_FIRST_SECONDS = 10.0


def fingerprint(method: str, path: str, raw: bytes) -> str:
    try:  # key order and whitespace do not make a request different
        canonical = msgspec.json.encode(msgspec.json.decode(raw), order="sorted")
    except msgspec.DecodeError:
        canonical = raw
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise invalid("invalid_idempotency_key",
                      f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.", HEADER)


async def run(
    store: IdempotencyStore, scope: str, key: str, fp: str,
    handler: Callable[[], Awaitable[tuple[int, bytes]]],
) -> tuple[int, bytes, bool]:
    """Run ``handler`` once per key; returns (status, body, replayed)."""
    claim = await store.claim(scope, key, fp)
    if isinstance(claim, Claimed):
        try:
            status, body = await handler()
        except BaseException:
            await store.release(claim)
            raise
        await store.complete(claim, fp, status, body)
        return status, body, False
    record = claim.record
    deadline = asyncio.get_running_loop().time() + WAIT_FOR_FIRST_SECONDS
    while True:
        if record.fingerprint != fp:
            raise ApiError("conflict", "idempotency_key_reused",
                           f"This {HEADER} was used with a different request body.", param=HEADER)
        if record.state == "done":
            return record.status, record.body, True
        if asyncio.get_running_loop().time() > deadline:
            raise ApiError("conflict", "idempotency_request_in_progress",
                           f"A request with this {HEADER} is still running.", param=HEADER)
        await asyncio.sleep(0.02)
        latest: Record | None = await store.get(scope, key)
        if latest is None:  # the first request failed and freed the key: run ours
            return await run(store, scope, key, fp, handler)
        record = latest
