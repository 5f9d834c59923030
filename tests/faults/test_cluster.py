"""A 3-node cluster with R3 streams loses nothing when a node dies under load.

Given three nats-server nodes on loopback (the cluster block of nats.conf), an API, a
supervisor and a worker started with ``PROTOFACE_REPLICAS=3``, and clients creating
(with Idempotency-Keys, retried until answered) and ending sessions, some in an org
at its concurrency cap, when one node is SIGKILLed mid-stream, then every session
answered 201 is in the log, each Idempotency-Key made exactly one session, no session
was claimed twice, no org ever had more sessions open than its plan allows, and the
log is still replicated on three servers' worth of configuration (R3).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from protoface.domain import session as s
from protoface.domain.events import Event
from protoface.domain.plans import PLANS
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from tests.faults.cluster import Cluster
from tests.faults.conftest import Deployment, auth

pytestmark = pytest.mark.slow


@dataclass
class Ledger:
    by_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    created: set[str] = field(default_factory=set)
    by_api_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    answers: list[int] = field(default_factory=list)
    created_at: list[float] = field(default_factory=list)


async def create_with_retries(client: httpx.AsyncClient, key: str, ledger: Ledger) -> str | None:
    """Create with an Idempotency-Key, retrying the same key until it is answered."""
    idem = f"idem-{uuid.uuid4().hex}"
    for _ in range(20):
        try:
            r = await client.post("/v1/pipecat/sessions", headers={
                **auth(key), "Idempotency-Key": idem},
                json={"avatar_id": "av_stock_001", "quality": "mock"})
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
            continue
        ledger.answers.append(r.status_code)
        if r.status_code == 409:
            # The key's first attempt died with the node and could not be released: the
            # key answers "in progress" until its claim's lease runs out, then a retry
            # takes it over. Any other conflict would be a bug.
            assert r.json()["error"]["code"] == "idempotency_request_in_progress", r.text
        if r.status_code == 201:
            session_id: str = r.json()["session"]["id"]
            ledger.by_key[idem].add(session_id)
            ledger.created.add(session_id)
            ledger.by_api_key[key].add(session_id)
            ledger.created_at.append(time.monotonic())
            return session_id
        if r.status_code in (402, 429):
            return None  # refused (cap reached): a final answer, nothing written
        await asyncio.sleep(0.2)  # 503: the cluster is electing; retry the same key
    return None


async def churn(client: httpx.AsyncClient, key: str, ledger: Ledger, stop: asyncio.Event,
                hold: float) -> None:
    while not stop.is_set():
        session_id = await create_with_retries(client, key, ledger)
        if session_id is None:
            await asyncio.sleep(0.1)
            continue
        await asyncio.sleep(hold)
        for _ in range(20):
            try:
                ended = await client.post(f"/v1/sessions/{session_id}/end", headers=auth(key))
                if ended.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


async def test_killing_one_node_of_three_loses_no_acknowledged_event(
    cluster: Cluster, tmp_path: Path
) -> None:
    deployment = Deployment(cluster.url, tmp_path, env={
        "PROTOFACE_REPLICAS": "3", "PROTOFACE_WHEN_AT_CAPACITY": "queue"}).start()
    try:
        deployment.spawn("worker", "--slots", "4", "--data-dir", str(deployment.data_dir),
                         name="worker")
        capped = deployment.new_key("starter")  # at most 2 sessions at once
        roomy = deployment.new_key("scale")
        ledger = Ledger()
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=deployment.url, timeout=15) as client:
            tasks = [asyncio.create_task(churn(client, capped, ledger, stop, 0.3))
                     for _ in range(4)]
            tasks += [asyncio.create_task(churn(client, roomy, ledger, stop, 0.05))
                      for _ in range(3)]
            await asyncio.sleep(4)
            before = len(ledger.created)
            cluster.nodes[0].kill()  # the first URL: where every process connected first
            killed_at = time.monotonic()
            await asyncio.sleep(12)
            stop.set()
            await asyncio.gather(*tasks)
        after = len(ledger.created) - before
        first_after = min((t for t in ledger.created_at if t > killed_at), default=None)
        recovered = f"{first_after - killed_at:.1f}s" if first_after else "never"
        print(f"\ncluster: {len(ledger.created)} sessions acknowledged ({after} after the "
              f"kill; first {recovered} after it), answers {sorted(set(ledger.answers))}")
        assert after > 0, "nothing was acknowledged after the node died"
        assert set(ledger.answers) <= {201, 409, 429, 503}, "an unexpected answer"
        survivors = ",".join(node.url for node in cluster.nodes[1:])
        history = await read_log(survivors)
    finally:
        deployment.stop()

    sessions = fold(history)
    # Zero acknowledged events lost.
    assert ledger.created <= set(sessions)
    # One Idempotency-Key, one session.
    assert all(len(ids) == 1 for ids in ledger.by_key.values())
    # Claims exactly once.
    claims: dict[str, int] = defaultdict(int)
    for event in history:
        if isinstance(event, s.SessionStarting):
            claims[event.session_id] += 1
    assert claims and max(claims.values()) == 1
    # The org cap held at every point of the log.
    peaks = max_open_per_org(history)
    capped_org = {sessions[i].org_id for i in ledger.by_api_key[capped]}
    assert len(capped_org) == 1
    assert peaks[capped_org.pop()] == PLANS["starter"].max_concurrency  # reached, never passed


async def read_log(url: str) -> list[Event]:
    # Generous: with a node gone, consumer creation waits on the stream's raft group.
    log = await EventLog.connect(url, replicas=3, timeout=10.0)
    try:
        info = await log.js.stream_info(subjects.STREAM)
        assert info.config.num_replicas == 3
        return [stored.event async for stored in log.replay(1)]
    finally:
        await log.close()


def fold(history: list[Event]) -> dict[str, s.Session]:
    states: dict[str, s.Session] = {}
    for event in history:
        if isinstance(event, s.SessionEvent):
            state = s.evolve(states.get(event.session_id), event)
            if state is not None:
                states[event.session_id] = state
    return states


def max_open_per_org(history: list[Event]) -> dict[str, int]:
    """The most sessions each org had open (created, not yet terminal) at once."""
    open_now: dict[str, set[str]] = defaultdict(set)
    peak: dict[str, int] = defaultdict(int)
    for event in history:
        if isinstance(event, s.SessionCreated):
            open_now[event.org_id].add(event.session_id)
            peak[event.org_id] = max(peak[event.org_id], len(open_now[event.org_id]))
        elif isinstance(event, s.SessionEnded | s.SessionFailed | s.SessionCanceled):
            open_now[event.org_id].discard(event.session_id)
    return peak
