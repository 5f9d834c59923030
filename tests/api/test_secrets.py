"""Secrets at rest: given a created session, then the event log holds neither the clear
worker token nor the API key, only a sealed token the keyring opens for that session."""

from __future__ import annotations

import httpx
import pytest

from protoface.api.services import Services
from protoface.domain.sealing import SealError
from protoface.domain.session import LiveKitTransport, SessionCreated
from protoface.streams import eventlog, subjects
from tests.api.support import auth, create_ok
from tests.conftest import KeyFactory
from tests.tokens import worker_token


async def raw_log(services: Services) -> list[bytes]:
    return [eventlog.encode(s.event) async for s in services.log.replay(1)]


async def test_the_log_never_holds_the_clear_worker_token_or_the_api_key(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    token = worker_token(identity="secret-keeper")
    session = await create_ok(client, key, transport={"worker_token": token})
    await client.post(f"/v1/sessions/{session['id']}/end", headers=auth(key))
    signature = token.rsplit(".", 1)[1]
    records = await raw_log(services)
    assert any(session["id"].encode() in r for r in records)
    for record in records:
        assert token.encode() not in record
        assert signature.encode() not in record
        assert key.encode() not in record
        assert key.removeprefix("sk_live_").encode() not in record


async def test_created_event_holds_a_sealed_token_that_opens_to_the_original(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    token = worker_token()
    sid = (await create_ok(client, key, transport={"worker_token": token}))["id"]
    events, _ = await services.log.load(subjects.session_history(sid))
    created = events[0]
    assert isinstance(created, SessionCreated)
    assert isinstance(created.transport, LiveKitTransport)
    sealed = created.transport.worker_token_sealed
    assert sealed != token and token not in sealed
    assert services.keyring.open(sealed, sid) == token


async def test_a_sealed_token_is_bound_to_its_session(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    token = worker_token()
    first = (await create_ok(client, key, transport={"worker_token": token}))["id"]
    second = (await create_ok(client, key, transport={"worker_token": token}))["id"]
    sealed = {}
    for sid in (first, second):
        events, _ = await services.log.load(subjects.session_history(sid))
        sealed[sid] = events[0].transport.worker_token_sealed  # type: ignore[union-attr]
    assert sealed[first] != sealed[second]
    with pytest.raises(SealError):
        services.keyring.open(sealed[first], second)


async def test_reads_never_return_the_worker_token(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    token = worker_token()
    created = await create_ok(client, key, transport={"worker_token": token})
    sid = created["id"]
    responses = [
        await client.get(f"/v1/sessions/{sid}", headers=auth(key)),
        await client.get("/v1/sessions", headers=auth(key)),
        await client.post(f"/v1/sessions/{sid}/end", headers=auth(key)),
    ]
    for r in responses:
        assert r.status_code == 200
        assert token not in r.text
        assert '"worker_token":"[redacted]"' in r.text.replace(" ", "")
