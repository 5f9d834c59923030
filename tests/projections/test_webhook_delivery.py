"""Webhook delivery end to end: a real receiver on loopback verifies Standard Webhooks
signatures, gets every lifecycle event once per endpoint in order even when it fails the
first attempts, sees retries after a 500 and none after a 410; a plain NATS subscriber
sees the same events; every attempt is an event in the log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from nats.aio.msg import Msg
from standardwebhooks import Webhook

from protoface.api.auth import key_hash
from protoface.api.services import Services
from protoface.api.sessions.schemas import session_view
from protoface.domain.session import Claim, Finish, ReportFirstFrame, RequestEnd
from protoface.domain.webhook import DeliveryAttempted, EndpointDisabled
from protoface.projections.webhooks.dispatcher import Dispatcher, DispatchSettings
from protoface.streams import subjects
from protoface.streams.server import free_port
from tests.api.support import act_as_worker, auth, create_ok
from tests.conftest import KeyFactory

LIFECYCLE = ["session.queued", "session.starting", "session.first_frame", "session.ending",
             "session.ended"]


class Receiver:
    """``/flaky`` answers 500 to the first two attempts of each webhook, then 204;
    ``/gone`` always answers 410."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.requests: list[tuple[str, str, str]] = []  # (path, webhook-id, outcome)
        self.delivered: list[dict[str, Any]] = []
        self.tries: dict[str, int] = {}
        self.hosts: list[str] = []  # the Host header of every request
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hosts.append(request.headers.get("host", ""))
        path = request.path
        payload = Webhook(self.secrets[path]).verify(body, dict(request.headers))
        msg_id = request.headers["webhook-id"]
        if path == "/gone":
            self.requests.append((path, msg_id, "410"))
            return web.Response(status=410)
        if path == "/down":
            self.requests.append((path, msg_id, "500"))
            return web.Response(status=500)
        if path == "/busy":
            if msg_id not in self.tries:
                self.tries[msg_id] = 1
                self.requests.append((path, msg_id, "503"))
                return web.Response(status=503, headers={"Retry-After": "1"})
            self.requests.append((path, msg_id, "204"))
            self.delivered.append(payload)
            return web.Response(status=204)
        self.tries[msg_id] = self.tries.get(msg_id, 0) + 1
        if self.tries[msg_id] <= 2:
            self.requests.append((path, msg_id, "500"))
            return web.Response(status=500)
        self.requests.append((path, msg_id, "204"))
        self.delivered.append(payload)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


async def _until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_lifecycle_events_reach_each_endpoint_once_in_order_signed_and_on_nats(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver
) -> None:
    key = await new_key()
    await services.projector.catch_up()  # the key was made through another connection
    principal = services.orgs.authenticate(key_hash(key))
    assert principal is not None
    org_id = principal.org.id
    base = f"http://127.0.0.1:{receiver.port}"

    services.webhooks.allow_private = True  # loopback, explicitly allowed for this test
    try:
        endpoints = {}
        for path in ("/flaky", "/gone"):
            r = await client.post("/v1/webhook_endpoints", json={"url": base + path},
                                  headers=auth(key))
            assert r.status_code == 201, r.text
            endpoints[path] = r.json()["id"]
            receiver.secrets[path] = r.json()["secret"]
    finally:
        services.webhooks.allow_private = False

    published: list[dict[str, Any]] = []

    async def on_nats(msg: Msg) -> None:
        published.append(json.loads(msg.data))

    sub = await services.log.nc.subscribe(f"webhooks.{org_id}.>", cb=on_nats)
    dispatcher = Dispatcher(services.log, services.keyring, session_view, DispatchSettings(
        allow_private=True, schedule=(0.0, 0.05, 0.05, 0.05, 0.05)))
    await dispatcher.start()
    try:
        sid = (await create_ok(client, key))["id"]
        now = datetime.now(UTC)
        await act_as_worker(services, sid, Claim(session_id=sid, now=now, worker_id="wrk_a"))
        await act_as_worker(services, sid, ReportFirstFrame(session_id=sid, now=now))
        await act_as_worker(services, sid, RequestEnd(session_id=sid, now=now))
        await act_as_worker(services, sid, Finish(session_id=sid, now=datetime.now(UTC)))

        await _until(lambda: len(receiver.delivered) == len(LIFECYCLE))
        await _until(lambda: len(published) == len(LIFECYCLE))
        await asyncio.sleep(0.3)  # nothing more arrives: no duplicates, no late retries
    finally:
        await dispatcher.stop()
        await sub.unsubscribe()

    # Once per event, in order, each the public resource at that moment.
    assert [p["type"] for p in receiver.delivered] == LIFECYCLE
    assert [p["data"]["status"] for p in receiver.delivered] == [
        "queued", "starting", "running", "ending", "ended"]
    assert all(p["data"]["id"] == sid and "timestamp" in p for p in receiver.delivered)

    # Retries after a 500 keep the webhook-id; event k+1 waits until event k is delivered.
    flaky = [(msg_id, outcome) for path, msg_id, outcome in receiver.requests
             if path == "/flaky"]
    ids_in_order = list(dict.fromkeys(msg_id for msg_id, _ in flaky))
    assert len(ids_in_order) == len(LIFECYCLE)
    assert flaky == [(i, o) for i in ids_in_order for o in ("500", "500", "204")]

    # 410: one request, no retry, and the endpoint is disabled.
    gone = [r for r in receiver.requests if r[0] == "/gone"]
    assert len(gone) == 1
    listed = (await client.get("/v1/webhook_endpoints", headers=auth(key))).json()["data"]
    status = {e["id"]: (e["status"], e["disabled_reason"]) for e in listed}
    assert status[endpoints["/gone"]] == ("disabled", "gone")
    assert status[endpoints["/flaky"]] == ("enabled", None)

    # NATS subscribers see the same events, with the same bodies.
    assert [p["type"] for p in published] == LIFECYCLE
    assert [p["data"] for p in published] == [p["data"] for p in receiver.delivered]

    # Every attempt is an event (auditable).
    events, _ = await services.log.load(subjects.webhook_endpoint_history(endpoints["/flaky"]))
    attempts = [e for e in events if isinstance(e, DeliveryAttempted)]
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "delivered"] * 5
    assert [a.status for a in attempts] == [500, 500, 204] * 5
    assert [a.webhook_id for a in attempts] == [i for i in ids_in_order for _ in range(3)]
    events, _ = await services.log.load(subjects.webhook_endpoint_history(endpoints["/gone"]))
    assert [type(e).__name__ for e in events[1:]] == ["DeliveryAttempted", "EndpointDisabled"]
    assert isinstance(events[-1], EndpointDisabled)


async def test_a_restarted_dispatcher_does_not_deliver_again(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver
) -> None:
    """The log is the dispatcher's position: settled deliveries are not repeated."""
    key = await new_key()
    services.webhooks.allow_private = True
    try:
        r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
            "url": f"http://127.0.0.1:{receiver.port}/flaky", "event_types": ["session.queued"]})
    finally:
        services.webhooks.allow_private = False
    receiver.secrets["/flaky"] = r.json()["secret"]
    settings = DispatchSettings(allow_private=True, schedule=(0.0, 0.05, 0.05))
    first = Dispatcher(services.log, services.keyring, session_view, settings)
    await first.start()
    try:
        await create_ok(client, key)
        await _until(lambda: len(receiver.delivered) == 1)
    finally:
        await first.stop()
    await asyncio.sleep(0.1)
    second = Dispatcher(services.log, services.keyring, session_view, settings)
    await second.start()
    await asyncio.sleep(0.5)
    await second.stop()
    assert len(receiver.delivered) == 1
    assert [o for _, _, o in receiver.requests] == ["500", "500", "204"]


async def test_a_restarted_dispatcher_resumes_a_pending_retry_where_it_stopped(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver
) -> None:
    key = await new_key()
    services.webhooks.allow_private = True
    try:
        r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
            "url": f"http://127.0.0.1:{receiver.port}/flaky", "event_types": ["session.queued"]})
    finally:
        services.webhooks.allow_private = False
    endpoint_id = r.json()["id"]
    receiver.secrets["/flaky"] = r.json()["secret"]
    history = subjects.webhook_endpoint_history(endpoint_id)

    async def attempts() -> list[DeliveryAttempted]:
        events, _ = await services.log.load(history)
        return [e for e in events if isinstance(e, DeliveryAttempted)]

    # The retry waits 2.5 s: long enough that a loaded machine still stops the first
    # dispatcher before it, short enough to keep the test quick.
    settings = DispatchSettings(allow_private=True, schedule=(0.0, 2.5, 0.05))
    first = Dispatcher(services.log, services.keyring, session_view, settings)
    await first.start()
    try:
        await create_ok(client, key)
        deadline = asyncio.get_running_loop().time() + 10
        while not await attempts():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await first.stop()  # stops while the retry waits
    assert len(receiver.requests) == 1

    # The restarted dispatcher reads attempt 1 from the log and continues with attempt 2
    # at the recorded time.
    second = Dispatcher(services.log, services.keyring, session_view, settings)
    await second.start()
    try:
        await _until(lambda: len(receiver.delivered) == 1)
    finally:
        await second.stop()
    recorded = await attempts()
    assert [(a.attempt, a.outcome) for a in recorded] == [
        (1, "retrying"), (2, "retrying"), (3, "delivered")]
    assert len({a.webhook_id for a in recorded}) == 1
    assert recorded[0].next_attempt_at is not None
    assert recorded[1].at >= recorded[0].next_attempt_at


async def _endpoint(client: httpx.AsyncClient, services: Services, key: str, url: str,
                    receiver: Receiver, path: str) -> str:
    services.webhooks.allow_private = True
    try:
        r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
            "url": url + path, "event_types": ["session.queued"]})
    finally:
        services.webhooks.allow_private = False
    assert r.status_code == 201, r.text
    receiver.secrets[path] = r.json()["secret"]
    return str(r.json()["id"])


async def test_retry_after_is_honoured_and_repeated_failure_disables_the_endpoint(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver
) -> None:
    key = await new_key()
    base = f"http://127.0.0.1:{receiver.port}"
    busy = await _endpoint(client, services, key, base, receiver, "/busy")
    down = await _endpoint(client, services, key, base, receiver, "/down")
    dispatcher = Dispatcher(services.log, services.keyring, session_view, DispatchSettings(
        allow_private=True, schedule=(0.0, 0.05, 0.05), disable_after=1))
    await dispatcher.start()
    try:
        await create_ok(client, key)
        await _until(lambda: len(receiver.delivered) == 1)
        await _until(lambda: dispatcher.endpoints.endpoints[down].status == "disabled")
    finally:
        await dispatcher.stop()

    events, _ = await services.log.load(subjects.webhook_endpoint_history(busy))
    first, second = [e for e in events if isinstance(e, DeliveryAttempted)]
    assert (first.status, first.outcome, second.outcome) == (503, "retrying", "delivered")
    assert (second.at - first.at).total_seconds() >= 0.9  # Retry-After: 1, not 0.05 s

    assert [o for p, _, o in receiver.requests if p == "/down"] == ["500"] * 3
    events, _ = await services.log.load(subjects.webhook_endpoint_history(down))
    assert [getattr(e, "outcome", None) for e in events[1:]] == [
        "retrying", "retrying", "failed", None]
    assert isinstance(events[-1], EndpointDisabled) and events[-1].reason == "failing"
