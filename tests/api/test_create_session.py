"""POST /v1/sessions: given an org and a request, then a session or a precise error."""

from __future__ import annotations

import httpx

from protoface.api.services import Services
from protoface.domain.session import LiveKitTransport, SessionCreated
from tests.api.support import create_ok, history
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


async def test_the_tokens_publish_on_behalf_is_kept_on_the_session_but_not_shown(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    token = worker_token(publish_on_behalf="agent-AJ_1")
    r = await client.post("/v1/sessions", json=livekit_body(transport={"worker_token": token}),
                          headers=auth(key))
    assert r.status_code == 201, r.text
    session_id = r.json()["id"]
    # Stored: the worker reads it from the session, never from the token again.
    events, _ = await history(services, session_id)
    created = events[0]
    assert isinstance(created, SessionCreated)
    assert isinstance(created.transport, LiveKitTransport)
    assert created.transport.publish_on_behalf == "agent-AJ_1"
    # Internal: the public Session (the SDK forbids extra fields) does not carry it.
    assert "publish_on_behalf" not in r.json()["transport"]
    shown = (await client.get(f"/v1/sessions/{session_id}", headers=auth(key))).json()
    assert "publish_on_behalf" not in shown["transport"]


async def test_a_token_without_publish_on_behalf_keeps_none(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    token = worker_token(publish_on_behalf=None)
    created = await create_ok(client, key, transport={"worker_token": token})
    events, _ = await history(services, created["id"])
    transport = events[0].transport  # type: ignore[attr-defined]
    assert transport.publish_on_behalf is None
