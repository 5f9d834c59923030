"""The worker registry (a KV bucket in memory) across a nats-server restart."""

from __future__ import annotations

import asyncio

import pytest

from protoface.streams.eventlog import EventLog, LogUnavailable
from protoface.streams.server import EmbeddedNats
from protoface.streams.work import WorkerInfo, WorkerRegistry


async def test_after_a_server_restart_the_registry_is_created_again_and_workers_reappear(
    private_nats: EmbeddedNats,
) -> None:
    log = await EventLog.connect(private_nats.url)
    try:
        await log.ensure_stream()
        worker, supervisor = await WorkerRegistry.open(log), await WorkerRegistry.open(log)
        await worker.announce(WorkerInfo(worker_id="wrk_a", slots=2, free=2))
        assert set(await supervisor.snapshot()) == {"wrk_a"}
        # Given a restart, which loses a bucket kept in memory,
        private_nats.kill()
        private_nats.start()
        await _until_connected(log)
        # then reading it says it cannot tell (never "no workers") …
        with pytest.raises(LogUnavailable):
            await supervisor.snapshot()
        # … and once the worker announces itself again, it is there.
        await worker.announce(WorkerInfo(worker_id="wrk_a", slots=2, free=1))
        found = await supervisor.snapshot()
        assert set(found) == {"wrk_a"} and found["wrk_a"][1].free == 1
    finally:
        await log.close()


async def _until_connected(log: EventLog) -> None:
    for _ in range(100):
        if log.connected and await log.healthy():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the log did not come back")
