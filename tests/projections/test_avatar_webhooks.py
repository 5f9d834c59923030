"""Avatar webhooks: a build's outcome reaches the org's endpoints (signed, through the same
dispatcher as session events) and NATS subscribers as ``avatar.ready`` / ``avatar.failed``
with ``data`` = the public Avatar resource."""

from __future__ import annotations

import json
from typing import Any

import httpx
from nats.aio.msg import Msg

from protoface.api.auth import key_hash
from protoface.api.avatars.schemas import avatar_view
from protoface.api.services import Services
from protoface.api.sessions.schemas import session_view
from protoface.projections.webhooks.dispatcher import Dispatcher, DispatchSettings
from protoface.worker.builds import Builder
from tests.api.support import auth
from tests.avatars import FACE, NO_FACE, upload_ok
from tests.conftest import KeyFactory
from tests.projections.test_webhook_delivery import Receiver, _until, receiver

__all__ = ["receiver"]  # the fixture, shared with the session webhook specs


async def test_build_outcomes_are_delivered_and_published_as_avatar_webhooks(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver
) -> None:
    key = await new_key()
    await services.projector.catch_up()
    principal = services.orgs.authenticate(key_hash(key))
    assert principal is not None
    services.webhooks.allow_private = True  # loopback, explicitly allowed for this test
    try:
        r = await client.post(
            "/v1/webhook_endpoints", headers=auth(key),
            json={"url": f"http://127.0.0.1:{receiver.port}/flaky",
                  "event_types": ["avatar.ready", "avatar.failed"]})
        assert r.status_code == 201, r.text
        receiver.secrets["/flaky"] = r.json()["secret"]
    finally:
        services.webhooks.allow_private = False
    published: list[dict[str, Any]] = []

    async def on_nats(msg: Msg) -> None:
        published.append(json.loads(msg.data))

    sub = await services.log.nc.subscribe(f"webhooks.{principal.org.id}.avatar.>", cb=on_nats)
    dispatcher = Dispatcher(services.log, services.keyring, session_view, DispatchSettings(
        allow_private=True, schedule=(0.0, 0.05, 0.05, 0.05, 0.05)), render_avatar=avatar_view)
    await dispatcher.start()
    builder = Builder(services.log, services.avatars.store, "wrk_test")
    try:
        ready = await upload_ok(client, key, FACE, name="Ada")
        failed = await upload_ok(client, key, NO_FACE, name="Blank")
        await builder.build(ready["id"])
        await builder.build(failed["id"])
        await _until(lambda: len(receiver.delivered) == 2 and len(published) == 2)
    finally:
        await dispatcher.stop()
        await sub.unsubscribe()

    by_type = {p["type"]: p for p in receiver.delivered}
    assert set(by_type) == {"avatar.ready", "avatar.failed"}
    assert by_type["avatar.ready"]["data"] == {**ready, "status": "ready"}
    assert by_type["avatar.failed"]["data"] == {
        **failed, "status": "failed", "failure_reason": "No face detected in source image."}
    assert all("timestamp" in p for p in receiver.delivered)
    assert sorted(published, key=lambda p: p["type"]) == sorted(
        receiver.delivered, key=lambda p: p["type"])
