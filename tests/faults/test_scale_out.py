"""Two API processes on one NATS behave as one API: the create rate limit is shared, and
a list right after a create answered by the other process includes it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protoface.streams.server import EmbeddedNats, free_port
from tests.faults.conftest import Deployment, auth

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def two_apis(nats: EmbeddedNats, root: Path, rate: int) -> Iterator[tuple[Deployment, str]]:
    deployment = Deployment(nats.url, root,
                            env={"PROTOFACE_CREATE_RATE_PER_MINUTE": str(rate)}).start()
    try:
        port = free_port()
        deployment.spawn("api", "--port", str(port), "--data-dir", str(deployment.data_dir),
                         name="api-2")
        second = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{second}/v1/status", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the second API never answered"
            time.sleep(0.1)
        yield deployment, second
    finally:
        deployment.stop()


def create(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/pipecat/sessions", headers=auth(key), timeout=10,
                      json={"avatar_id": "av_stock_001", "quality": "mock"})


def test_the_create_rate_limit_is_shared_by_every_api_process(
    own_nats: EmbeddedNats, tmp_path: Path,
) -> None:
    with two_apis(own_nats, tmp_path, rate=10) as (deployment, second):
        key = deployment.new_key("scale")
        # Given 10 creates a minute per key, spread over two API processes …
        answers = [create((deployment.url, second)[i % 2], key) for i in range(10)]
        assert [r.status_code for r in answers] == [201] * 10
        # … then the 11th is refused by either of them, with when to retry.
        for url in (deployment.url, second):
            refused = create(url, key)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["type"] == "rate_limit"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # And another key is not held back by it.
        assert create(second, deployment.new_key("scale")).status_code == 201


def test_a_list_right_after_a_create_through_another_api_includes_it(
    own_nats: EmbeddedNats, tmp_path: Path,
) -> None:
    with two_apis(own_nats, tmp_path, rate=1_000_000) as (deployment, second):
        key, busy = deployment.new_key("scale"), deployment.new_key("scale")
        # Another org's creates keep the log busy, so the second API's read model is
        # often a few events behind when the list reaches it.
        stop = threading.Event()
        noise = [threading.Thread(target=churn, args=(deployment.url, busy, stop))
                 for _ in range(4)]
        for thread in noise:
            thread.start()
        try:
            for n in range(30):
                created = create(deployment.url, key)
                assert created.status_code == 201, created.text
                session_id = created.json()["session"]["id"]
                listed = httpx.get(f"{second}/v1/sessions", headers=auth(key),
                                   params={"limit": "1"}, timeout=10).json()
                assert [s["id"] for s in listed["data"]] == [session_id], n
        finally:
            stop.set()
            for thread in noise:
                thread.join()


def churn(url: str, key: str, stop: threading.Event) -> None:
    """Create and end sessions until told to stop."""
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError):
            created = create(url, key)
            if created.status_code == 201:
                httpx.post(f"{url}/v1/sessions/{created.json()['session']['id']}/end",
                           headers=auth(key), timeout=10)
