"""POST /v1/sessions: given an org and a request, then a session or a precise error."""

from __future__ import annotations

import httpx

from tests.conftest import KeyFactory
from tests.tokens import livekit_body, worker_token


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_create_returns_queued_session_with_seed_defaults(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("launch")
    r = await client.post("/v1/sessions", json=livekit_body(), headers=auth(key))
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["object"] == "session" and s["id"].startswith("sess_")
    assert s["status"] == "queued"
    assert s["quality"] == "standard"
    assert s["idle_timeout_seconds"] == 30
    assert s["max_duration_seconds"] == 600
    assert s["metadata"] == {}
    assert s["transport"]["worker_token"] == "[redacted]"
    assert s["usage"] == {"billable_seconds": 0, "frames": 0}
    assert r.headers["x-request-id"].startswith("req_")


async def test_get_right_after_create_sees_the_session(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = (await client.post("/v1/sessions", json=livekit_body(), headers=auth(key))).json()
    r = await client.get(f"/v1/sessions/{created['id']}", headers=auth(key))
    assert r.status_code == 200
    assert r.json() == created


async def test_max_duration_is_clamped_to_the_plan(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")
    r = await client.post(
        "/v1/sessions", json=livekit_body(max_duration_seconds=3600), headers=auth(key)
    )
    assert r.status_code == 201
    assert r.json()["max_duration_seconds"] == 120


async def test_expired_worker_token_is_unprocessable(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    import datetime

    key = await new_key()
    token = worker_token(ttl=datetime.timedelta(minutes=-5))
    r = await client.post(
        "/v1/sessions", json=livekit_body(transport={"worker_token": token}), headers=auth(key)
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "unprocessable", "worker_token_expired", "transport.worker_token"
    )
    assert error["request_id"] == r.headers["x-request-id"]
