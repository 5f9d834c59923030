"""Admission by cost across API processes: no worker is ever booked past its capacity.

Given two API processes on one NATS (each admitting from its own view of the registry)
and one worker whose capacity fits 3 ``lite`` sessions, when 10 creates arrive at once,
split between the two, then every answer is 201 or 503 ``at_capacity`` with
``Retry-After``, 3 to 6 are admitted (each API fills the room it sees), and the worker
claims exactly 3: a session
one API admitted into room the other API's create took meanwhile waits in the queue
(the claim checks again). Then the next create is refused, by either API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protoface.domain import session as s
from protoface.streams.server import EmbeddedNats, free_port
from tests.faults.conftest import Deployment, auth, sessions_in_log

pytestmark = pytest.mark.slow

LITE_ROOM = 3


@pytest.fixture
def two_apis(own_nats: EmbeddedNats, tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    deployment = Deployment(own_nats.url, tmp_path,
                            env={"PROTOFACE_WHEN_AT_CAPACITY": "reject"}).start()
    try:
        port = free_port()
        deployment.spawn("api", "--port", str(port), "--data-dir", str(deployment.data_dir),
                         name="api-2")
        second = f"http://127.0.0.1:{port}"
        deployment.spawn("worker", "--data-dir", str(deployment.data_dir), "--capacity",
                         f"mock={LITE_ROOM},lite={LITE_ROOM},standard=1,pro=1", name="worker")
        for url in (deployment.url, second):
            wait_until(lambda u=url: workers_status(u) == "operational", 60)  # type: ignore[misc]
        yield deployment, second
    finally:
        deployment.stop()


def room(url: str, quality: str) -> list[int]:
    """``protoface_capacity_room_sessions`` of every live worker for ``quality``."""
    text = httpx.get(f"{url}/metrics", timeout=2).text
    prefix = "protoface_capacity_room_sessions{"
    return [int(float(line.split()[-1])) for line in text.splitlines()
            if line.startswith(prefix) and f'quality="{quality}"' in line]


def workers_status(url: str) -> str | None:
    try:
        body = httpx.get(f"{url}/v1/status", timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return None
    return next((c["status"] for c in body["components"] if c["name"] == "workers"), None)


def wait_until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition never held")


async def test_concurrent_creates_through_two_apis_never_overbook_a_worker(
    two_apis: tuple[Deployment, str],
) -> None:
    deployment, second = two_apis
    key = deployment.new_key("scale")
    # Given the worker's room as every API shows it (Prometheus, per worker and tier) …
    for url in (deployment.url, second):
        assert room(url, "lite") == [LITE_ROOM]
    async with httpx.AsyncClient(timeout=30) as client:
        async def create(url: str) -> httpx.Response:
            return await client.post(f"{url}/v1/pipecat/sessions", headers=auth(key),
                                     json={"avatar_id": "av_stock_001", "quality": "lite"})

        answers = await asyncio.gather(*(create((deployment.url, second)[i % 2])
                                         for i in range(10)))
        admitted = [r.json()["session"]["id"] for r in answers if r.status_code == 201]
        for refused in (r for r in answers if r.status_code != 201):
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "at_capacity"
            assert int(refused.headers["Retry-After"]) >= 1
        # Each API admits what it sees room for: 3, or up to 3 each when they race.
        assert LITE_ROOM <= len(admitted) <= 2 * LITE_ROOM
        # The worker claims what fits, and no more, however many were admitted.
        await asyncio.sleep(3)
        logged = await sessions_in_log(deployment.nats_url)
        claimed = [i for i in admitted if logged[i].worker_id is not None]
        print(f"\nadmitted {len(admitted)} of 10 through two APIs; claimed {len(claimed)} "
              f"(room {LITE_ROOM})")
        assert len(claimed) == LITE_ROOM
        assert all(logged[i].status == "queued" for i in set(admitted) - set(claimed))
        # Then the next create is refused by either API, whose metrics show the worker
        # full, and whose status says the workers are degraded (documented fields only).
        for url in (deployment.url, second):
            late = await create(url)
            assert late.status_code == 503, late.text
            assert late.json()["error"]["code"] == "at_capacity"
            assert room(url, "lite") == [0]
            status = httpx.get(f"{url}/v1/status").json()
            assert set(status) == {"status", "components", "updated_at"}
            assert all(set(c) == {"name", "status"} for c in status["components"])
            assert workers_status(url) == "degraded"
    assert not [i for i in admitted if logged[i].status in s.TERMINAL]
