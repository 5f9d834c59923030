"""Idempotency keys in the JetStream KV bucket: create-only claims, completion, release."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec
import pytest
from nats.js.api import StorageType
from nats.js.errors import KeyNotFoundError

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from protoface.streams.idempotency import TTL_SECONDS, Claimed, Existing, IdempotencyStore, Record


@pytest.fixture
async def store(event_log: EventLog) -> IdempotencyStore:
    return await IdempotencyStore.open(event_log.js)


def fresh_scope() -> str:
    return f"org_{uuid.uuid4().hex}"


async def test_bucket_is_file_backed_keeps_one_revision_and_expires_after_a_day(
    event_log: EventLog, store: IdempotencyStore
) -> None:
    info = await event_log.js.stream_info(f"KV_{subjects.IDEMPOTENCY_BUCKET}")
    assert info.config.storage == StorageType.FILE
    assert info.config.max_msgs_per_subject == 1
    assert info.config.max_age == TTL_SECONDS
    # Opening again finds the same bucket rather than failing or recreating it.
    again = await IdempotencyStore.open(event_log.js)
    scope = fresh_scope()
    assert isinstance(await store.claim(scope, "k", "fp"), Claimed)
    assert isinstance(await again.claim(scope, "k", "fp"), Existing)


async def test_first_claim_wins_and_a_second_sees_it_pending(store: IdempotencyStore) -> None:
    scope = fresh_scope()
    first = await store.claim(scope, "key-1", "fp-a")
    assert isinstance(first, Claimed)
    assert first.key == IdempotencyStore.storage_key(scope, "key-1")
    assert first.revision > 0

    second = await store.claim(scope, "key-1", "fp-b")
    assert isinstance(second, Existing)
    assert (second.record.fingerprint, second.record.state) == ("fp-a", "pending")
    pending = await store.get(scope, "key-1")
    assert pending is not None and (pending.fingerprint, pending.state) == ("fp-a", "pending")


async def test_completed_claim_is_returned_with_its_response(store: IdempotencyStore) -> None:
    scope = fresh_scope()
    claimed = await store.claim(scope, "key-1", "fp-a")
    assert isinstance(claimed, Claimed)

    await store.complete(claimed, "fp-a", 201, b'{"id":"sess_1"}')

    done = Record(fingerprint="fp-a", state="done", status=201, body=b'{"id":"sess_1"}')
    assert await store.claim(scope, "key-1", "fp-a") == Existing(done)
    assert await store.get(scope, "key-1") == done


async def test_release_frees_the_key_for_the_next_request(store: IdempotencyStore) -> None:
    scope = fresh_scope()
    claimed = await store.claim(scope, "key-1", "fp-a")
    assert isinstance(claimed, Claimed)

    await store.release(claimed)

    assert await store.get(scope, "key-1") is None
    retried = await store.claim(scope, "key-1", "fp-b")
    assert isinstance(retried, Claimed)
    assert retried.revision > claimed.revision
    again = await store.get(scope, "key-1")
    assert again is not None and (again.fingerprint, again.state) == ("fp-b", "pending")
    # And the new owner's claim works like any other: complete, then Existing(done).
    await store.complete(retried, "fp-b", 200, b"ok")
    again = await store.claim(scope, "key-1", "fp-b")
    assert isinstance(again, Existing) and again.record.state == "done"


async def test_keys_are_scoped(store: IdempotencyStore) -> None:
    one, two = fresh_scope(), fresh_scope()
    assert isinstance(await store.claim(one, "same", "fp"), Claimed)
    assert isinstance(await store.claim(two, "same", "fp"), Claimed)
    assert await store.get(fresh_scope(), "same") is None


async def test_concurrent_claims_on_one_key_exactly_one_wins(store: IdempotencyStore) -> None:
    for _ in range(10):
        scope = fresh_scope()
        results = await asyncio.gather(
            *(store.claim(scope, "race", f"fp-{i}") for i in range(8))
        )
        winners = [r for r in results if isinstance(r, Claimed)]
        assert len(winners) == 1, results
        others = [r for r in results if isinstance(r, Existing)]
        assert len(others) == 7
        winner_fp = (await store.get(scope, "race"))
        assert winner_fp is not None and winner_fp.state == "pending"
        assert {o.record.fingerprint for o in others} == {winner_fp.fingerprint}


async def test_concurrent_claims_after_a_release_exactly_one_wins(
    store: IdempotencyStore,
) -> None:
    # A released key holds a delete marker: re-creating it takes a different path.
    for _ in range(5):
        scope = fresh_scope()
        first = await store.claim(scope, "race", "fp-0")
        assert isinstance(first, Claimed)
        await store.release(first)
        results = await asyncio.gather(
            *(store.claim(scope, "race", f"fp-{i}") for i in range(1, 7))
        )
        assert sum(isinstance(r, Claimed) for r in results) == 1, results
        assert sum(isinstance(r, Existing) for r in results) == 5


@pytest.mark.parametrize(
    "key",
    [
        "with spaces and\ttabs",
        "ünïcødé ключ 鍵 🔑",
        "dots.and*wild>cards/and/slashes",
        "x" * 255,
        "",
    ],
    ids=["spaces", "unicode", "subject-chars", "255-chars", "empty"],
)
async def test_arbitrary_client_keys_work(store: IdempotencyStore, key: str) -> None:
    scope = fresh_scope()
    storage_key = IdempotencyStore.storage_key(scope, key)
    assert len(storage_key) == 64 and all(c in "0123456789abcdef" for c in storage_key)

    claimed = await store.claim(scope, key, "fp")
    assert isinstance(claimed, Claimed)
    assert isinstance(await store.claim(scope, key, "fp"), Existing)
    await store.complete(claimed, "fp", 201, b"body")
    assert await store.get(scope, key) == Record(
        fingerprint="fp", state="done", status=201, body=b"body"
    )


def test_storage_keys_separate_scope_from_key() -> None:
    # "a" + "b\0c" must not collide with "a\0b" + "c"-like concatenations.
    assert IdempotencyStore.storage_key("ab", "c") != IdempotencyStore.storage_key("a", "bc")
    assert IdempotencyStore.storage_key("s", "k") == IdempotencyStore.storage_key("s", "k")


async def test_a_pending_claim_past_its_lease_is_taken_over_by_one_retry(
    store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a claim whose request died (or could not release it while the log was down)
    scope = fresh_scope()
    assert isinstance(await store.claim(scope, "k", "fp"), Claimed)
    assert isinstance(await store.claim(scope, "k", "fp"), Existing)  # within its lease
    # When its lease has run out, then exactly one of two racing retries takes it over.
    monkeypatch.setattr("protoface.streams.idempotency.PENDING_LEASE_SECONDS", 0.5)
    await asyncio.sleep(0.6)
    first, second = await asyncio.gather(store.claim(scope, "k", "fp"),
                                         store.claim(scope, "k", "fp"))
    assert sorted(type(c).__name__ for c in (first, second)) == ["Claimed", "Existing"]


async def test_a_claim_that_loses_its_race_as_key_not_found_finds_the_winners_claim(
    store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a claim whose create loses to another request in the way nats-py reports
    # when its follow-up read finds nothing (a cluster node behind the winner's write) …
    create = store._kv.create
    key = str(uuid.uuid4())

    async def loses_once(k: str, value: bytes, **kwargs: Any) -> int:
        monkeypatch.setattr(store._kv, "create", create)
        winner = Record(fingerprint="other", state="pending", claimed_at=time.time())
        await create(k, msgspec.msgpack.encode(winner))
        raise KeyNotFoundError

    monkeypatch.setattr(store._kv, "create", loses_once)
    # … when it claims, then it reads the winner's claim instead of failing (a 500).
    outcome = await store.claim("org_1", key, "mine")
    assert isinstance(outcome, Existing) and outcome.record.fingerprint == "other"
