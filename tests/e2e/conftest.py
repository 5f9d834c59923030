"""A whole Protoface deployment as real processes on loopback: its own nats-server,
``protoface api``, ``protoface supervisor`` and as many ``protoface worker``
processes as a test starts. Heartbeats are fast (0.5 s) so liveness tests are quick.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protoface.api.config import load_keyring
from protoface.streams.server import EmbeddedNats, free_port

HEARTBEAT = 0.5
# Every tier pinned at 1,000 sessions a worker: only its slots bound it.
UNBOUNDED = "mock=1000,lite=1000,standard=1000,pro=1000"


class Stack:
    def __init__(self, nats: EmbeddedNats, data_dir: Path, logs: Path) -> None:
        self.nats = nats
        self.data_dir = data_dir
        self.logs = logs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PROTOFACE_HEARTBEAT_SECONDS": str(HEARTBEAT)}
        with (self.logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "protoface", *args, "--nats-url", self.nats.url],
                stdout=out, stderr=out, env=env,
            )
        self.processes.append(process)
        return process

    def start(self) -> None:
        self.spawn("api", "--port", str(self.port), "--data-dir", str(self.data_dir),
                   name="api")
        self.spawn("supervisor", name="supervisor")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError((self.logs / "api.log").read_text()[-3000:])

    def worker(self, slots: int = 4, capacity: str = UNBOUNDED) -> subprocess.Popen[bytes]:
        """Start a worker and wait until the API counts its slots. By default its cost is
        pinned so low that its slots decide (these tests count slots; a probe on a busy
        test machine would not); a test of capacity by cost pins its own figure."""
        before = self.free_slots()
        process = self.spawn("worker", "--slots", str(slots), "--data-dir", str(self.data_dir),
                             "--capacity", capacity, name=f"worker-{uuid.uuid4().hex[:6]}")
        self.wait_for(lambda: self.free_slots() >= before + slots, 20,
                      "worker slots never appeared")
        return process

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=2).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def free_slots(self) -> int:
        return int(self.metric("protoface_worker_slots_available"))

    def new_key(self, plan: str = "launch") -> str:
        out = subprocess.run(
            [sys.executable, "-m", "protoface", "keys", "create", "--org",
             f"org-{uuid.uuid4().hex[:10]}", "--plan", plan, "--nats-url", self.nats.url],
            check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip().splitlines()[-1]

    @staticmethod
    def wait_for(condition: object, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(message)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = Path(tmp_path_factory.mktemp("stack"))
    nats = EmbeddedNats(port=free_port(), store_dir=root / "jetstream").start()
    load_keyring(root / "data" / "seal-keys.json", create=True)
    logs = root / "logs"
    logs.mkdir()
    deployment = Stack(nats, root / "data", logs)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        nats.stop()


@pytest.fixture
def workers(stack: Stack) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Workers a test starts with ``stack.worker()`` are stopped after it."""
    before = len(stack.processes)
    started: list[subprocess.Popen[bytes]] = []
    yield started
    # Let the workers claim whatever the test left queued, so no session waits for a
    # worker that is about to die (it would hold a slot of the next test's capacity).
    stack.wait_for(lambda: stack.metric('protoface_sessions{status="queued"}') == 0, 10,
                   "sessions left queued")
    for process in stack.processes[before:]:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    del stack.processes[before:]
    stack.wait_for(lambda: stack.free_slots() == 0, 10, "dead workers still counted")
