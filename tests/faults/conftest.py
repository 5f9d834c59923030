"""Fault tests run their own deployments: a nats-server they may SIGKILL and restart
(same port, same store), ``protoface api`` and ``protoface supervisor`` processes whose
logs are kept for the secrets grep. Never the session-wide server of tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protoface.api.config import load_keyring
from protoface.domain import session as s
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats, free_port
from tests.e2e.conftest import HEARTBEAT
from tests.faults.cluster import Cluster, wait_for_jetstream

# A session left in ``created`` is failed after this many seconds (30 in production).
STUCK_CREATED_SECONDS = 3.0


class Deployment:
    """One API and one supervisor on a NATS URL this test controls."""

    def __init__(self, nats_url: str, root: Path, env: dict[str, str] | None = None) -> None:
        self.nats_url = nats_url
        self.root = root
        self.data_dir = root / "data"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        load_keyring(self.data_dir / "seal-keys.json", create=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "PROTOFACE_HEARTBEAT_SECONDS": str(HEARTBEAT),
            "PROTOFACE_WHEN_AT_CAPACITY": "queue", "PROTOFACE_LOG_LEVEL": "DEBUG",
            "PROTOFACE_STUCK_CREATED_SECONDS": str(STUCK_CREATED_SECONDS),
            "PROTOFACE_CREATE_RATE_PER_MINUTE": "1000000",
            # Snapshots early, so `audit verify` has something to compare.
            "PROTOFACE_SNAPSHOT_SECONDS": "2", **(env or {}),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "protoface", *args, "--nats-url", self.nats_url],
                stdout=out, stderr=out, env=self.env,
            )
        self.processes.append(process)
        return process

    def start(self) -> Deployment:
        self.spawn("api", "--port", str(self.port), "--data-dir", str(self.data_dir), name="api")
        self.spawn("supervisor", name="supervisor")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/status", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # never leave the supervisor behind a failed start
        raise RuntimeError((self.logs / "api.log").read_text()[-3000:])

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "protoface", *args, "--nats-url", self.nats_url],
            capture_output=True, text=True, timeout=timeout, env=self.env,
        )

    def new_key(self, plan: str = "launch", org: str | None = None) -> str:
        out = self.cli("keys", "create", "--org", org or f"org-{uuid.uuid4().hex[:10]}",
                       "--plan", plan)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server this test alone uses: it may be killed and restarted."""
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "jetstream").start()
    yield server
    server.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes on loopback, JetStream ready: any one of them may be killed."""
    started = Cluster(tmp_path / "cluster").start()
    try:
        asyncio.run(wait_for_jetstream(started.url))
        yield started
    finally:
        started.stop()


@pytest.fixture
def deployment(own_nats: EmbeddedNats, tmp_path: Path) -> Iterator[Deployment]:
    started = Deployment(own_nats.url, tmp_path).start()
    yield started
    started.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def sessions_in_log(nats_url: str, replicas: int = 1) -> dict[str, s.Session]:
    """Every session folded from the raw log, independently of any projection."""
    log = await EventLog.connect(nats_url, replicas=replicas)
    states: dict[str, s.Session] = {}
    try:
        async for stored in log.replay(1):
            event = stored.event
            if isinstance(event, s.SessionEvent):
                state = s.evolve(states.get(event.session_id), event)
                if state is not None:
                    states[event.session_id] = state
    finally:
        await log.close()
    return states


# The e2e deployment (api, supervisor, workers as processes) for the relay fuzz.
from tests.e2e.conftest import stack, workers  # noqa: E402,F401
