"""Isolation and secrets, against ``protoface api`` as a real process.

Given org A with a LiveKit session (a worker_token), a Pipecat session (a media token)
and a webhook endpoint (a signing secret), then org B sees none of them: every endpoint
answers 404 exactly as for an id that never existed (not 403), the relay socket closes
with the same code as for no session, and an Idempotency-Key is scoped to its org.
After the flow, no secret appears in the process logs, the raw event log, a DuckDB
export or any response body other than the one that issued it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import websockets

from protoface.api.sessions.relay import PROTOCOL
from protoface.streams.eventlog import EventLog
from tests.conftest import LiveServer
from tests.tokens import livekit_body, worker_token

pytestmark = pytest.mark.slow


@dataclass
class Org:
    key: str
    livekit_session: str = ""
    pipecat_session: str = ""
    media_token: str = ""
    endpoint_id: str = ""
    webhook_secret: str = ""
    worker_token: str = ""
    bodies: list[str] = field(default_factory=list)  # every response body after issuance


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def populate(live: LiveServer, name: str) -> Org:
    """An org with one of everything, the way a customer makes them."""
    org = Org(live.new_key("launch", org=f"{name}-{uuid.uuid4().hex[:8]}"))
    org.worker_token = worker_token(identity=f"worker-{name}")
    with httpx.Client(base_url=live.url, headers=headers(org.key), timeout=10) as http:
        created = http.post("/v1/sessions", json=livekit_body(
            transport={"worker_token": org.worker_token}))
        assert created.status_code == 201, created.text
        org.livekit_session = created.json()["id"]
        pipecat = http.post("/v1/pipecat/sessions",
                            json={"avatar_id": "av_stock_001", "quality": "mock"})
        assert pipecat.status_code == 201, pipecat.text
        org.pipecat_session = pipecat.json()["session"]["id"]
        org.media_token = pipecat.json()["relay"]["media_token"]
        endpoint = http.post("/v1/webhook_endpoints",
                             json={"url": "https://hooks.example.com/protoface"})
        assert endpoint.status_code == 201, endpoint.text
        org.endpoint_id = endpoint.json()["id"]
        org.webhook_secret = endpoint.json()["secret"]
    return org


@pytest.fixture(scope="module")
def orgs(live_server: LiveServer) -> tuple[Org, Org]:
    return populate(live_server, "alpha"), populate(live_server, "beta")


def test_every_http_endpoint_answers_404_for_another_orgs_resources(
    live_server: LiveServer, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    with httpx.Client(base_url=live_server.url, headers=headers(b.key), timeout=10) as http:
        probes = {
            ("GET", f"/v1/sessions/{a.livekit_session}"): "session_not_found",
            ("GET", f"/v1/sessions/{a.pipecat_session}"): "session_not_found",
            ("POST", f"/v1/sessions/{a.livekit_session}/end"): "session_not_found",
            ("POST", f"/v1/sessions/{a.pipecat_session}/end"): "session_not_found",
            ("DELETE", f"/v1/webhook_endpoints/{a.endpoint_id}"): "webhook_endpoint_not_found",
        }
        for (method, path), code in probes.items():
            foreign = http.request(method, path)
            missing = http.request(method, path.replace(a.livekit_session, "sess_none")
                                   .replace(a.pipecat_session, "sess_none")
                                   .replace(a.endpoint_id, "we_none"))
            assert foreign.status_code == 404, (method, path, foreign.text)
            assert foreign.json()["error"]["code"] == code
            # Indistinguishable from an id that never existed (apart from the id itself).
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == code
            b.bodies.append(foreign.text)
        listed = http.get("/v1/sessions", params={"limit": "100"}).json()
        assert {s["id"] for s in listed["data"]} == {b.livekit_session, b.pipecat_session}
        endpoints = http.get("/v1/webhook_endpoints").json()
        assert [e["id"] for e in endpoints["data"]] == [b.endpoint_id]
        b.bodies += [str(listed), str(endpoints)]
    # A's resources are all still there for A.
    with httpx.Client(base_url=live_server.url, headers=headers(a.key), timeout=10) as http:
        for session_id in (a.livekit_session, a.pipecat_session):
            mine = http.get(f"/v1/sessions/{session_id}")
            assert mine.status_code == 200
            a.bodies.append(mine.text)


def test_an_idempotency_key_is_scoped_to_its_org(
    live_server: LiveServer, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    same = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    body = {"avatar_id": "av_stock_001", "quality": "mock"}
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        first = http.post("/v1/pipecat/sessions", json=body, headers=headers(a.key, **same))
        second = http.post("/v1/pipecat/sessions", json=body, headers=headers(b.key, **same))
    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["session"]["id"] != second.json()["session"]["id"]
    a.bodies.append(first.text)
    b.bodies.append(second.text)


async def refusal(live: LiveServer, session_id: str, token: str) -> tuple[int, str]:
    """The HTTP status and error code a refused media-socket handshake answers."""
    url = live.url.replace("http://", "ws://") + f"/v1/pipecat/sessions/{session_id}/media"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=[PROTOCOL, token],  # type: ignore[list-item]
                                      open_timeout=10):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")["error"]["code"]


async def test_the_relay_socket_treats_another_orgs_session_as_missing(
    live_server: LiveServer, orgs: tuple[Org, Org]
) -> None:
    a, b = orgs
    missing = (404, "session_not_found")
    # B's media token on A's session: the handshake is refused with a 404, exactly as
    # for a session that never was (not the 403 a bare close before accept becomes).
    assert await refusal(live_server, a.pipecat_session, b.media_token) == missing
    assert await refusal(live_server, "sess_none", b.media_token) == missing
    # A media token is bound to one session: A's own token does not open A's other session.
    assert await refusal(live_server, a.livekit_session, a.media_token) == missing
    # And a token that is no token at all is a 401.
    assert await refusal(live_server, a.pipecat_session, "garbage") == (401, "invalid_media_token")


def test_a_body_over_the_cap_is_refused_before_it_is_read(
    live_server: LiveServer, orgs: tuple[Org, Org]
) -> None:
    a, _ = orgs
    huge = b'{"avatar_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        for path in ("/v1/sessions", "/v1/pipecat/sessions", "/v1/webhook_endpoints"):
            refused = http.post(path, content=huge, headers=headers(
                a.key, **{"Content-Type": "application/json"}))
            assert refused.status_code == 413, (path, refused.text)
            assert refused.json()["error"]["code"] == "body_too_large"


async def test_no_secret_is_in_the_logs_the_event_log_the_export_or_other_responses(
    live_server: LiveServer, orgs: tuple[Org, Org], tmp_path: Path
) -> None:
    a, b = orgs
    secrets = {
        f"{name} of {org_name}": value
        for org_name, org in (("A", a), ("B", b))
        for name, value in (
            ("api key", org.key), ("worker_token", org.worker_token),
            ("worker_token signature", org.worker_token.rsplit(".", 1)[1]),
            ("media token", org.media_token),
            ("media token signature", org.media_token.rsplit(".", 1)[1]),
            ("webhook secret", org.webhook_secret),
        )
    }
    places = {
        "api process log": Path(live_server.log_path).read_text(errors="replace"),  # type: ignore[attr-defined]
        "raw event log": await raw_event_log(live_server.nats_url),
        "duckdb export": duckdb_text(live_server.nats_url, tmp_path / "audit.duckdb"),
        "later responses": "\n".join(a.bodies + b.bodies),
    }
    leaks = [(what, where) for what, secret in secrets.items()
             for where, text in places.items() if secret in text]
    assert not leaks
    # Keys are stored as their sha256, which the log does hold.
    assert hashlib.sha256(a.key.encode()).hexdigest() in places["raw event log"]


async def raw_event_log(nats_url: str) -> str:
    log = await EventLog.connect(nats_url)
    try:
        chunks = [b"\n".join(batch.data) async for batch in log.replay_raw(1)]
    finally:
        await log.close()
    return b"\n".join(chunks).decode(errors="replace")


def duckdb_text(nats_url: str, out: Path) -> str:
    """Every value of every table of ``protoface audit export``, as text."""
    done = subprocess.run(
        [sys.executable, "-m", "protoface", "audit", "export", "--out", str(out),
         "--nats-url", nats_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    texts: list[str] = [done.stdout, done.stderr]
    with duckdb.connect(str(out), read_only=True) as db:
        for (table,) in db.execute("select table_name from information_schema.tables").fetchall():
            rows: list[tuple[Any, ...]] = db.execute(
                f'select cast(columns(*) as varchar) from "{table}"').fetchall()
            texts.extend(repr(row) for row in rows)
    return "\n".join(texts)
