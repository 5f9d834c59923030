"""Idempotency-Key on POST /v1/sessions: given a key, then one session per key and org,
replays of the first response, and a 409 for the same key with another body."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import httpx
import pytest

from tests.api.support import assert_error, auth, create
from tests.conftest import KeyFactory
from tests.tokens import livekit_body, worker_token

REPLAYED = "idempotent-replayed"


def idem(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def fresh() -> str:
    return f"idem-{uuid.uuid4()}"


async def session_ids(client: httpx.AsyncClient, key: str) -> list[str]:
    r = await client.get("/v1/sessions", params={"limit": 100}, headers=auth(key))
    return [s["id"] for s in r.json()["data"]]


async def test_same_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    body = livekit_body(metadata={"order": 1})
    first = await create(client, key, body=body, headers=idem(k))
    second = await create(client, key, body=body, headers=idem(k))
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert REPLAYED not in first.headers
    assert second.headers[REPLAYED] == "true"
    assert second.json() == first.json()
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert await session_ids(client, key) == [first.json()["id"]]


async def test_key_order_and_whitespace_do_not_make_a_body_different(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    body = livekit_body()
    compact = httpx.Request("POST", "/", json=body).content
    reordered = b'{\n  "transport": ' + httpx.Request(
        "POST", "/", json=body["transport"]).content + b', "avatar_id": "av_stock_001"}'
    headers = {**auth(key), **idem(k), "Content-Type": "application/json"}
    first = await client.post("/v1/sessions", content=compact, headers=headers)
    second = await client.post("/v1/sessions", content=reordered, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers[REPLAYED] == "true"
    assert second.json()["id"] == first.json()["id"]


async def test_same_key_with_another_body_is_a_conflict(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    first = await create(client, key, body=livekit_body(), headers=idem(k))
    assert first.status_code == 201
    r = await create(client, key, body=livekit_body(quality="pro"), headers=idem(k))
    assert_error(r, 409, "conflict", "idempotency_key_reused", "Idempotency-Key")
    assert await session_ids(client, key) == [first.json()["id"]]


async def test_concurrent_duplicates_make_one_session(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    body = livekit_body()
    responses = await asyncio.gather(
        *(create(client, key, body=body, headers=idem(k)) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(REPLAYED not in r.headers for r in responses) == 1
    assert await session_ids(client, key) == [responses[0].json()["id"]]


async def test_key_of_255_characters_is_accepted(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    r = await create(client, key, headers=idem("k" * 255))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("value", ["k" * 256, "k" * 1000, ""])
async def test_key_outside_1_to_255_characters_is_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, value: str
) -> None:
    key = await new_key()
    r = await create(client, key, headers=idem(value))
    assert_error(r, 400, "invalid_request", "invalid_idempotency_key", "Idempotency-Key")
    assert await session_ids(client, key) == []


async def test_keys_belong_to_one_org(client: httpx.AsyncClient, new_key: KeyFactory) -> None:
    alice, bob, k = await new_key(), await new_key(), fresh()
    body = livekit_body()
    a = await create(client, alice, body=body, headers=idem(k))
    b = await create(client, bob, body=body, headers=idem(k))
    assert a.status_code == b.status_code == 201
    assert REPLAYED not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert await session_ids(client, alice) == [a.json()["id"]]
    assert await session_ids(client, bob) == [b.json()["id"]]


async def test_keys_are_shared_by_the_api_keys_of_one_org(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    org = f"org-idem-{uuid.uuid4().hex[:8]}"
    first, second, k = await new_key(org=org), await new_key(org=org), fresh()
    body = livekit_body()
    a = await create(client, first, body=body, headers=idem(k))
    b = await create(client, second, body=body, headers=idem(k))
    assert b.headers[REPLAYED] == "true"
    assert a.json()["id"] == b.json()["id"]


async def test_a_failed_request_does_not_burn_the_key(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    expired = livekit_body(transport={"worker_token": worker_token(
        ttl=datetime.timedelta(minutes=-5))})
    for _ in range(2):  # the failure is not replayed either: it runs again
        r = await create(client, key, body=expired, headers=idem(k))
        assert_error(r, 422, "unprocessable", "worker_token_expired", "transport.worker_token")
        assert REPLAYED not in r.headers
    ok = await create(client, key, body=livekit_body(), headers=idem(k))
    assert ok.status_code == 201, ok.text
    assert REPLAYED not in ok.headers
    assert await session_ids(client, key) == [ok.json()["id"]]


async def test_a_refused_admission_does_not_burn_the_key(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key("free"), fresh()
    blocker = (await create(client, key)).json()["id"]
    body = livekit_body()
    r = await create(client, key, body=body, headers=idem(k))
    assert_error(r, 429, "quota_exceeded", "concurrent_sessions", None)
    await client.post(f"/v1/sessions/{blocker}/end", headers=auth(key))
    retry = await create(client, key, body=body, headers=idem(k))
    assert retry.status_code == 201, retry.text
    assert REPLAYED not in retry.headers


async def test_replay_survives_the_session_changing_state(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key, k = await new_key(), fresh()
    body = livekit_body()
    first = await create(client, key, body=body, headers=idem(k))
    await client.post(f"/v1/sessions/{first.json()['id']}/end", headers=auth(key))
    replay = await create(client, key, body=body, headers=idem(k))
    assert replay.status_code == 201
    assert replay.json() == first.json()  # the first response, not the current state
