"""The supervisor and workers it has never seen: a worker can claim a session before
its first announcement reaches the registry, so it is given a whole loss period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from protoface.projections.runner import Projector
from protoface.projections.sessions import SessionsModel
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats
from protoface.streams.work import WorkerInfo, WorkerRegistry
from protoface.worker.supervisor import LOST_AFTER, Supervisor
from tests.streams.support import creation, new_org, new_session, starting

HEARTBEAT = 0.2
LOSS_PERIOD = LOST_AFTER * HEARTBEAT


class Deployment:
    def __init__(self, log: EventLog, model: SessionsModel, projector: Projector) -> None:
        self.log = log
        self.model = model
        self.projector = projector

    async def claimed_by(self, worker_id: str) -> str:
        """A session queued and then claimed by ``worker_id``."""
        org, sid = new_org(), new_session()
        await self.log.append(creation(org, sid))
        seq = await self.log.append([starting(org, sid, worker_id)])
        await self.projector.wait_for(seq)
        return sid

    def status(self, session_id: str) -> str:
        return self.model.sessions[session_id].status


@pytest.fixture
async def deployment(private_nats: EmbeddedNats) -> AsyncIterator[Deployment]:
    log = await EventLog.connect(private_nats.url)
    await log.ensure_stream()
    model = SessionsModel()
    projector = Projector(log, [model], metrics=False)
    await projector.start()
    supervisor = Supervisor(log, model, HEARTBEAT)
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    await asyncio.sleep(2 * LOSS_PERIOD)  # a supervisor that has been up a while
    try:
        yield Deployment(log, model, projector)
    finally:
        stop.set()
        await running
        await projector.stop()
        await log.close()


async def announce_every_heartbeat(log: EventLog, worker_id: str, after: float) -> None:
    registry = await WorkerRegistry.open(log)
    await asyncio.sleep(after)
    for _ in range(1000):
        await registry.announce(WorkerInfo(worker_id=worker_id, slots=4, free=3))
        await asyncio.sleep(HEARTBEAT)


async def test_a_new_worker_that_announces_itself_after_its_first_claim_keeps_it(
    deployment: Deployment,
) -> None:
    # Given a worker that claims a session before its first announcement is visible,
    announcing = asyncio.create_task(
        announce_every_heartbeat(deployment.log, "wrk_new", after=0.6 * LOSS_PERIOD))
    try:
        sid = await deployment.claimed_by("wrk_new")
        # when the supervisor looks for a few loss periods, then the session is its own.
        await asyncio.sleep(3 * LOSS_PERIOD)
        assert deployment.status(sid) == "starting"
    finally:
        announcing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcing


async def test_a_worker_never_seen_is_lost_after_a_whole_loss_period(
    deployment: Deployment,
) -> None:
    # Given a session claimed by a worker that never shows up in the registry,
    sid = await deployment.claimed_by("wrk_ghost")
    # then it is not failed at once (the worker may not have announced itself yet)
    await asyncio.sleep(0.5 * LOSS_PERIOD)
    assert deployment.status(sid) == "starting"
    # but once a loss period has passed without it, it is failed as worker_lost.
    for _ in range(50):
        if deployment.status(sid) == "failed":
            break
        await asyncio.sleep(0.1)
    state = deployment.model.sessions[sid]
    assert state.status == "failed" and state.failure is not None
    assert state.failure.code == "worker_lost"
