"""``/v1/webhook_endpoints``: the secret is shown once and stored sealed; lists never show
it; another org's endpoint is 404; unsafe URLs are refused."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from protoface.api.app import create_app
from protoface.api.config import WEBHOOK_ALLOW_PRIVATE, Settings, load_keyring
from protoface.api.services import Services
from protoface.cli import _dispatch_settings, _parser, _settings, _up_settings
from protoface.domain.webhook import EndpointCreated
from protoface.streams import subjects
from protoface.streams.server import EmbeddedNats
from tests.api.support import assert_error, auth
from tests.conftest import KeyFactory

URL = "https://hooks.example.com/protoface"


@pytest.fixture
def production(services: Services) -> Iterator[None]:
    before = services.webhooks.production
    services.webhooks.production = True
    yield
    services.webhooks.production = before


async def test_creating_an_endpoint_shows_its_secret_once_and_stores_it_sealed(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    r = await client.post("/v1/webhook_endpoints", json={"url": URL}, headers=auth(key))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["id"].startswith("we_") and created["status"] == "enabled"
    assert created["url"] == URL and created["event_types"] == []

    listed = (await client.get("/v1/webhook_endpoints", headers=auth(key))).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert "secret" not in listed["data"][0]

    events, _ = await services.log.load(subjects.webhook_endpoint_history(created["id"]))
    (stored,) = events
    assert isinstance(stored, EndpointCreated)
    assert created["secret"] not in stored.secret_sealed
    assert services.keyring.open(stored.secret_sealed, created["id"]) == created["secret"]


async def test_an_endpoint_can_ask_for_some_event_types(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
        "url": URL, "event_types": ["session.ended", "session.failed"]})
    assert r.status_code == 201, r.text
    assert r.json()["event_types"] == ["session.ended", "session.failed"]
    r = await client.post("/v1/webhook_endpoints", headers=auth(key), json={
        "url": URL, "event_types": ["session.exploded"]})
    assert_error(r, 400, "invalid_request", "invalid_value", "event_types")


async def test_deleting_an_endpoint_removes_it_and_another_org_gets_404(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    mine, theirs = await new_key(), await new_key()
    created = (await client.post("/v1/webhook_endpoints", json={"url": URL},
                                 headers=auth(mine))).json()
    r = await client.delete(f"/v1/webhook_endpoints/{created['id']}", headers=auth(theirs))
    assert_error(r, 404, "not_found", "webhook_endpoint_not_found")
    assert (await client.get("/v1/webhook_endpoints", headers=auth(theirs))).json()["data"] == []

    r = await client.delete(f"/v1/webhook_endpoints/{created['id']}", headers=auth(mine))
    assert r.status_code == 204
    assert (await client.get("/v1/webhook_endpoints", headers=auth(mine))).json()["data"] == []
    r = await client.delete(f"/v1/webhook_endpoints/{created['id']}", headers=auth(mine))
    assert_error(r, 404, "not_found", "webhook_endpoint_not_found")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://localhost/hook", "https://10.0.0.5/hook",
    "https://192.168.1.1/hook", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook", "https://[::ffff:127.0.0.1]/hook", "ftp://example.com/hook",
    "not a url",
])
async def test_loopback_private_and_link_local_urls_are_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, url: str
) -> None:
    r = await client.post("/v1/webhook_endpoints", json={"url": url},
                          headers=auth(await new_key()))
    assert_error(r, 400, "invalid_request", "invalid_value", "url")


@pytest.mark.usefixtures("production")
async def test_production_mode_accepts_only_https(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    r = await client.post("/v1/webhook_endpoints", json={"url": "http://hooks.example.com/x"},
                          headers=auth(key))
    assert_error(r, 400, "invalid_request", "invalid_value", "url")
    r = await client.post("/v1/webhook_endpoints", json={"url": URL}, headers=auth(key))
    assert r.status_code == 201


async def test_the_endpoints_api_needs_an_api_key_and_a_valid_body(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    assert_error(await client.get("/v1/webhook_endpoints"), 401, "authentication",
                 "missing_api_key")
    r = await client.post("/v1/webhook_endpoints", json={"uri": URL},
                          headers=auth(await new_key()))
    assert r.status_code == 400


def test_settings_default_to_refusing_private_addresses() -> None:
    from protoface.api.config import Settings

    settings = Settings()
    assert not settings.webhook_allow_private and not settings.production
    assert dataclasses.replace(settings, production=True).production


# ── protoface up on loopback: a developer's receiver on localhost ───────────────

NATS = "nats://127.0.0.1:4222"


@pytest.fixture
def no_private_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_ALLOW_PRIVATE, raising=False)


def up(*argv: str) -> Settings:
    return _up_settings(_parser().parse_args(["up", *argv]), NATS)


def api(*argv: str) -> Settings:
    return _settings(_parser().parse_args(["api", *argv]), NATS)


@pytest.mark.usefixtures("no_private_setting")
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_up_on_loopback_may_deliver_to_loopback_endpoints(host: str) -> None:
    settings = up("--host", host)
    assert settings.webhook_allow_private
    assert _dispatch_settings(settings).allow_private  # the dispatcher delivers there too


@pytest.mark.usefixtures("no_private_setting")
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "avatars.example.com"])
def test_up_on_another_address_keeps_the_guard(host: str) -> None:
    assert not up("--host", host).webhook_allow_private


@pytest.mark.usefixtures("no_private_setting")
def test_api_keeps_the_guard_even_on_loopback() -> None:
    settings = api("--host", "127.0.0.1")
    assert not settings.webhook_allow_private
    assert not _dispatch_settings(settings).allow_private


def test_the_variable_set_to_0_keeps_the_guard_for_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_ALLOW_PRIVATE, "0")
    assert not up().webhook_allow_private


@pytest.mark.usefixtures("no_private_setting")
def test_production_up_keeps_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTOFACE_PRODUCTION", "1")
    assert not up().webhook_allow_private


@pytest.mark.usefixtures("no_private_setting")
def test_up_says_once_that_it_allows_loopback_endpoints(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="protoface"):
        up()
    said = [r for r in caplog.records if "webhooks may be delivered to loopback" in r.message]
    assert len(said) == 1
    with caplog.at_level(logging.INFO, logger="protoface"):
        caplog.clear()
        api()
    assert not [r for r in caplog.records if "webhooks" in r.message]


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    services = await Services.start(settings, load_keyring(settings.keys_file, create=False))
    try:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://protoface.test") as c:
            yield c
    finally:
        await services.stop()


@pytest.fixture
async def up_client(nats_server: EmbeddedNats, data_dir: Path,
                    no_private_setting: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = _up_settings(_parser().parse_args(["up", "--data-dir", str(data_dir)]),
                            nats_server.url)
    async for c in client_for(settings):
        yield c


@pytest.fixture
async def api_client(nats_server: EmbeddedNats, data_dir: Path,
                     no_private_setting: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(_parser().parse_args(["api", "--data-dir", str(data_dir)]),
                         nats_server.url)
    async for c in client_for(settings):
        yield c


LOCAL_HOOK = "http://127.0.0.1:8765/hook"


async def test_an_up_app_accepts_a_loopback_endpoint(
    up_client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    r = await up_client.post("/v1/webhook_endpoints", json={"url": LOCAL_HOOK},
                             headers=auth(await new_key()))
    assert r.status_code == 201, r.text
    assert r.json()["url"] == LOCAL_HOOK


async def test_an_api_app_refuses_a_loopback_endpoint(
    api_client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    r = await api_client.post("/v1/webhook_endpoints", json={"url": LOCAL_HOOK},
                              headers=auth(await new_key()))
    error = assert_error(r, 400, "invalid_request", "invalid_value", "url")
    assert "not allowed" in error["message"]
