"""The error envelope: given any request that fails, then the seed's envelope with
``error.request_id`` equal to the ``X-Request-Id`` header, and never a 500."""

from __future__ import annotations

import httpx
import pytest

from protoface.api.services import Services
from tests.api.support import assert_error, auth, create
from tests.conftest import KeyFactory
from tests.tokens import livekit_body


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing-here"), ("POST", "/v2/sessions"), ("GET", "/"),
     ("GET", "/v1/sessions/sess_x/extra"), ("DELETE", "/v1/avatars/../sessions/x/y")],
)
async def test_unknown_route_is_a_404_envelope(
    client: httpx.AsyncClient, new_key: KeyFactory, method: str, path: str
) -> None:
    key = await new_key()
    r = await client.request(method, path, headers=auth(key))
    assert_error(r, 404, "not_found", any_param=True)


async def test_unknown_route_without_a_key_is_still_a_404_envelope(
    client: httpx.AsyncClient,
) -> None:
    assert_error(await client.get("/v1/nothing-here"), 404, "not_found", any_param=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/sessions"), ("PUT", "/v1/sessions"), ("PATCH", "/v1/sessions/sess_x"),
     ("GET", "/v1/sessions/sess_x/end"), ("POST", "/v1/billing/plans")],
)
async def test_wrong_method_is_a_405_envelope(
    client: httpx.AsyncClient, new_key: KeyFactory, method: str, path: str
) -> None:
    key = await new_key()
    r = await client.request(method, path, headers=auth(key))
    assert_error(r, 405, "invalid_request", any_param=True)


AUTHENTICATED = [
    ("POST", "/v1/sessions"), ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/sess_01HXY5K8E7QYG3X8Z6N9R7S0VR"),
    ("POST", "/v1/sessions/sess_01HXY5K8E7QYG3X8Z6N9R7S0VR/end"),
]


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
async def test_missing_api_key_is_a_401_envelope(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await client.request(method, path, json=livekit_body() if method == "POST" else None)
    assert_error(r, 401, "authentication", "missing_api_key", None)


@pytest.mark.parametrize(
    "header",
    ["Bearer sk_live_not-a-real-key", "Bearer nonsense", "Basic sk_live_abc", "sk_live_abc",
     "Bearer "],
)
@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
async def test_invalid_api_key_is_a_401_envelope(
    client: httpx.AsyncClient, method: str, path: str, header: str
) -> None:
    r = await client.request(
        method, path, headers={"Authorization": header},
        json=livekit_body() if method == "POST" else None,
    )
    assert_error(r, 401, "authentication", "invalid_api_key", None)


async def test_body_over_the_limit_is_a_413_envelope(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    too_big = b'{"avatar_id": "' + b"a" * (services.settings.max_body_bytes + 1) + b'"}'
    r = await client.post(
        "/v1/sessions", content=too_big,
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert_error(r, 413, "invalid_request", any_param=True)


async def test_body_over_the_limit_without_content_length_is_a_413_envelope(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    chunk = b"a" * 65536

    async def stream():  # type: ignore[no-untyped-def]
        yield b'{"avatar_id": "'
        for _ in range(services.settings.max_body_bytes // len(chunk) + 1):
            yield chunk
        yield b'"}'

    r = await client.post(
        "/v1/sessions", content=stream(),
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert_error(r, 413, "invalid_request", any_param=True)


async def test_every_failure_of_a_session_request_is_an_envelope_and_none_is_a_500(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")
    first = await create(client, key)
    assert first.status_code == 201
    attempts = [
        await client.post("/v1/sessions", content=b"{", headers=auth(key)),
        await client.post("/v1/sessions", content=b"\xff\xfe", headers=auth(key)),
        await create(client, key, body={"avatar_id": None, "transport": {}}),
        await create(client, key),  # over the free plan's concurrency
        await client.get("/v1/sessions", params={"limit": "many"}, headers=auth(key)),
        await client.get("/v1/sessions", params={"created_after": "yesterday"},
                         headers=auth(key)),
        await client.get("/v1/sessions", params={"status": "paused"}, headers=auth(key)),
        await client.get("/v1/sessions/not-an-id", headers=auth(key)),
        await client.post("/v1/sessions/sess_01HXY5K8E7QYG3X8Z6N9R7S0VR/end", headers=auth(key)),
        await client.get("/v1/sessions/%00", headers=auth(key)),
        await client.post("/v1/sessions", json=livekit_body(),
                          headers={**auth(key), "Idempotency-Key": "k" * 300}),
    ]
    for r in attempts:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert_error(r, r.status_code, r.json()["error"]["type"], any_param=True)


async def test_request_ids_are_unique_per_request(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    seen = set()
    for _ in range(5):
        r = await client.get("/v1/sessions/sess_01HXY5K8E7QYG3X8Z6N9R7S0VR", headers=auth(key))
        seen.add(assert_error(r, 404, "not_found", "session_not_found", "session_id")["request_id"])
    assert len(seen) == 5


async def test_successful_responses_carry_a_request_id_too(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    for r in (await client.get("/v1/sessions", headers=auth(key)),
              await client.get("/v1/billing/plans"), await create(client, key)):
        assert r.status_code in (200, 201)
        assert r.headers["x-request-id"].startswith("req_")
