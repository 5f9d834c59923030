"""Many dispatchers, one active: only the lease holder delivers; when it stops, a standby
takes over and delivers what follows, each webhook once."""

from __future__ import annotations

import asyncio

import httpx

from protoface.api.auth import key_hash
from protoface.api.services import Services
from protoface.api.sessions.schemas import session_view
from protoface.projections.webhooks.dispatcher import (
    Dispatcher,
    DispatchSettings,
    dispatch_while_holding,
)
from protoface.streams.lease import Lease
from tests.api.support import auth, create_ok
from tests.conftest import KeyFactory
from tests.projections.test_webhook_delivery import Receiver, _until, receiver  # noqa: F401


async def test_only_the_lease_holder_delivers_and_a_standby_takes_over(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver,  # noqa: F811
) -> None:
    key = await new_key()
    await services.projector.catch_up()
    assert services.orgs.authenticate(key_hash(key)) is not None
    services.webhooks.allow_private = True
    try:
        r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
            "url": f"http://127.0.0.1:{receiver.port}/busy", "event_types": ["session.queued"]})
    finally:
        services.webhooks.allow_private = False
    receiver.secrets["/busy"] = r.json()["secret"]
    settings = DispatchSettings(allow_private=True, schedule=(0.0, 0.05))
    made: list[str] = []

    async def run(name: str, stop: asyncio.Event) -> None:
        lease = await Lease.open(services.log, "test-dispatcher-failover", name, ttl=1.0)

        def make() -> Dispatcher:
            made.append(name)
            return Dispatcher(services.log, services.keyring, session_view, settings)

        await dispatch_while_holding(lease, make, stop)

    def delivered_ids() -> list[str]:
        return [msg_id for _, msg_id, outcome in receiver.requests if outcome == "204"]

    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(run("a", stop_a))
    await _until(lambda: made == ["a"])
    b = asyncio.create_task(run("b", stop_b))
    try:
        await create_ok(client, key)
        await _until(lambda: len(receiver.delivered) == 1)
        assert made == ["a"]  # b stands by

        stop_a.set()
        await a
        await _until(lambda: made == ["a", "b"], timeout=5.0)
        await create_ok(client, key)
        await _until(lambda: len(delivered_ids()) == 2)
        await asyncio.sleep(0.5)  # nothing else arrives
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(a, b)
    # Each webhook delivered once: a (graceful) handover finishes and records the attempt
    # under way, so the standby does not send it again.
    ids = delivered_ids()
    assert len(ids) == len(set(ids)) == 2
