"""Recovery: after the log's server restarts, creates succeed again within 5 s, every run.

Given an API that admits by worker capacity (503 ``at_capacity`` with no live worker), a
supervisor and a worker, when the single nats-server is SIGKILLed and restarted on the
same store (its in-memory worker registry lost), then a create succeeds within
``RECOVER_WITHIN`` seconds of the server listening again. When the node of a 3-node
cluster that leads the log is SIGKILLed and restarted on its store, a create succeeds
within ``RECOVER_WITHIN`` seconds of the log answering again (the node listening and
every stream led: nats-server elects new leaders 4–9 s after a leader's loss, whenever
the node comes back; docs/scale-out.md). Repeated ``PROTOFACE_RECOVERY_RUNS`` times (2
and 1 in ``make test``, 10 each in ``make fuzz``); each run's times are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats
from tests.e2e.conftest import UNBOUNDED
from tests.faults.cluster import Cluster
from tests.faults.conftest import Deployment, auth

pytestmark = pytest.mark.slow

RECOVER_WITHIN = 5.0
RUNS = int(os.environ.get("PROTOFACE_RECOVERY_RUNS", "2"))
CLUSTER_RUNS = int(os.environ.get("PROTOFACE_RECOVERY_RUNS", "1"))
DOWN = 4.0  # seconds the cluster node stays dead: the operator's report


def admitting_on(nats_url: str, root: Path, env: dict[str, str]) -> Deployment:
    deployment = Deployment(nats_url, root,
                            env={"PROTOFACE_WHEN_AT_CAPACITY": "reject", **env}).start()
    deployment.spawn("worker", "--data-dir", str(deployment.data_dir), "--capacity",
                     UNBOUNDED, name="worker")
    return deployment


@pytest.fixture
def admitting(own_nats: EmbeddedNats, tmp_path: Path) -> Iterator[Deployment]:
    deployment = admitting_on(own_nats.url, tmp_path, {})
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def admitting_cluster(cluster: Cluster, tmp_path: Path) -> Iterator[Deployment]:
    deployment = admitting_on(cluster.url, tmp_path, {"PROTOFACE_REPLICAS": "3"})
    try:
        yield deployment
    finally:
        deployment.stop()


def create(deployment: Deployment, key: str) -> int:
    try:
        return httpx.post(f"{deployment.url}/v1/pipecat/sessions", headers=auth(key),
                          json={"avatar_id": "av_stock_001", "quality": "mock"},
                          timeout=10).status_code
    except httpx.HTTPError:
        return 0


def until_created(deployment: Deployment, key: str, within: float) -> float:
    """Seconds until a create is answered 201 (polling), or ``within`` + 1 if never; the
    answers met on the way are printed (status, from when)."""
    started = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - started < within:
        status = create(deployment, key)
        if not seen or not seen[-1].startswith(f"{status} "):
            seen.append(f"{status} at {time.monotonic() - started:.2f} s")
        if status == 201:
            print("answers:", ", ".join(seen))
            return time.monotonic() - started
        time.sleep(0.05)
    print("answers:", ", ".join(seen))
    return within + 1


def test_creates_succeed_within_five_seconds_of_every_log_server_restart(
    own_nats: EmbeddedNats, admitting: Deployment,
) -> None:
    key = admitting.new_key("scale")
    assert until_created(admitting, key, 60) <= 60, "the worker never became available"
    recoveries: list[float] = []
    for run in range(RUNS):
        # When the server dies and comes back on the same store …
        own_nats.kill()
        time.sleep(1.0)
        own_nats.start()
        # … then a create succeeds within moments of it listening again.
        recoveries.append(until_created(admitting, key, 3 * RECOVER_WITHIN))
        print(f"\nrecovery run {run + 1}/{RUNS}: first 201 {recoveries[-1]:.2f} s after the "
              f"server listened again")
    assert max(recoveries) <= RECOVER_WITHIN, recoveries


def test_creates_succeed_within_five_seconds_of_a_cluster_node_restart(
    cluster: Cluster, admitting_cluster: Deployment,
) -> None:
    key = admitting_cluster.new_key("scale")
    assert until_created(admitting_cluster, key, 60) <= 60, "the worker never became available"
    recoveries: list[float] = []
    for run in range(CLUSTER_RUNS):
        # When the node leading the event log dies (the hard case: its raft groups must
        # elect new leaders before anything is appended) and comes back on its store
        # ``DOWN`` seconds later, as in the operator's report …
        index = asyncio.run(log_leader(cluster.url))
        survivors = ",".join(n.url for i, n in enumerate(cluster.nodes) if i != index)
        cluster.nodes[index].kill()
        killed = time.monotonic()
        time.sleep(DOWN)
        cluster.nodes[index].start()
        listening = time.monotonic()
        # … then a create succeeds within moments of the log answering again: the node
        # listening and every stream of the service (log, buckets) led again. nats-server
        # elects a lost leader's successor 4–9 s after the loss (server/raft.go, not
        # configurable); a node back sooner waits for that like everyone.
        answering = max(listening, asyncio.run(all_led(survivors)))
        created = answering + until_created(admitting_cluster, key, 3 * RECOVER_WITHIN)
        recoveries.append(created - answering)
        print(f"\ncluster recovery run {run + 1}/{CLUSTER_RUNS}: first 201 "
              f"{recoveries[-1]:.2f} s after the log answered again; the leader node died "
              f"{created - killed:.2f} s and listened again {created - listening:.2f} s "
              f"before it; streams led again {answering - killed:.2f} s after the death")
    assert max(recoveries) <= RECOVER_WITHIN, recoveries


async def log_leader(url: str) -> int:
    """Which node (index) leads the event log's raft group now."""
    log = await EventLog.connect(url, replicas=3, timeout=10.0)
    try:
        info = await log.js.stream_info(subjects.STREAM)
        assert info.cluster is not None and info.cluster.leader is not None
        return int(info.cluster.leader.removeprefix("n"))
    finally:
        await log.close()


async def all_led(url: str, within: float = 30.0) -> float:
    """When every stream (the log and the KV buckets) answered with a live leader."""
    nc = await nats.connect(servers=url.split(","))
    js = nc.jetstream(timeout=1.0)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                names = await js.streams_info()
                infos = [await js.stream_info(n.config.name or "") for n in names]
                if all(i.cluster and i.cluster.leader for i in infos):
                    return time.monotonic()
            await asyncio.sleep(0.05)
        raise AssertionError("the cluster's streams never had leaders again")
    finally:
        await nc.close()
