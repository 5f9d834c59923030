"""Where webhooks may go (SSRF): every resolved address is checked, and the POST goes
to the checked address, never to a second lookup (DNS rebinding)."""

from __future__ import annotations

import httpx
import pytest

from protoface.api.auth import key_hash
from protoface.api.services import Services
from protoface.api.sessions.schemas import session_view
from protoface.projections.webhooks.dispatcher import Dispatcher, DispatchSettings
from protoface.projections.webhooks.urls import UrlRefused, resolve_target
from tests.api.support import auth, create_ok
from tests.conftest import KeyFactory
from tests.projections.test_webhook_delivery import Receiver, _until, receiver  # noqa: F401


def resolver(*answers: list[str]):  # type: ignore[no-untyped-def]
    """A resolver that gives the next answer on each lookup (a rebinding DNS server)."""
    remaining = list(answers)
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    resolve.lookups = lookups  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"],
                                    ["::1"], ["93.184.216.34", "192.168.1.5"],
                                    ["::ffff:127.0.0.1"]])
async def test_a_name_resolving_to_any_internal_address_is_refused(answer: list[str]) -> None:
    with pytest.raises(UrlRefused, match="resolves to"):
        await resolve_target("https://hooks.example.com/in", production=True,
                             allow_private=False, resolve=resolver(answer))


async def test_the_target_is_the_checked_address_with_the_name_kept_for_host_and_tls() -> None:
    target = await resolve_target("https://hooks.example.com:8443/in?x=1", production=True,
                                  allow_private=False, resolve=resolver(["93.184.216.34"]))
    assert target.url == "https://93.184.216.34:8443/in?x=1"
    assert (target.host, target.server_name) == ("hooks.example.com:8443", "hooks.example.com")
    v6 = await resolve_target("https://hooks.example.com/", production=True,
                              allow_private=False, resolve=resolver(["2606:2800:220:1::1"]))
    assert v6.url == "https://[2606:2800:220:1::1]/"
    assert v6.host == "hooks.example.com"


async def test_an_unresolvable_name_is_refused() -> None:
    async def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UrlRefused, match="does not resolve"):
        await resolve_target("https://nowhere.example.com/", production=True,
                             allow_private=False, resolve=fails)


async def test_delivery_goes_to_the_address_that_was_checked(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services, receiver: Receiver,  # noqa: F811
) -> None:
    """``hooks.example.test`` exists in no DNS: the receiver on loopback gets the POST
    only because the dispatcher connects to the address its own check resolved, with
    the endpoint's name in ``Host``."""
    key = await new_key()
    await services.projector.catch_up()
    assert services.orgs.authenticate(key_hash(key)) is not None
    services.webhooks.allow_private = True
    try:
        r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
            "url": f"http://hooks.example.test:{receiver.port}/flaky",
            "event_types": ["session.queued"]})
    finally:
        services.webhooks.allow_private = False
    assert r.status_code == 201, r.text
    receiver.secrets["/flaky"] = r.json()["secret"]
    lookups = resolver(["127.0.0.1"])
    dispatcher = Dispatcher(services.log, services.keyring, session_view, DispatchSettings(
        allow_private=True, schedule=(0.0, 0.05, 0.05), resolve=lookups))
    await dispatcher.start()
    try:
        await create_ok(client, key)
        await _until(lambda: len(receiver.delivered) == 1)
    finally:
        await dispatcher.stop()
    assert receiver.delivered[0]["type"] == "session.queued"
    assert set(receiver.hosts) == {f"hooks.example.test:{receiver.port}"}
    # One lookup per attempt, each checked: three attempts (500, 500, 204).
    assert lookups.lookups == ["hooks.example.test"] * 3  # type: ignore[attr-defined]
