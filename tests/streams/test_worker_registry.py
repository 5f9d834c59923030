"""The worker registry (a KV bucket in memory) across a nats-server restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

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


async def test_a_watch_hears_announcements_again_within_moments_of_a_server_restart(
    private_nats: EmbeddedNats,
) -> None:
    log = await EventLog.connect(private_nats.url)
    heard: list[tuple[float, int]] = []

    async def on_change(worker_id: str, info: WorkerInfo | None) -> None:
        if info is not None:
            heard.append((asyncio.get_running_loop().time(), info.free))

    try:
        await log.ensure_stream()
        worker = await WorkerRegistry.open(log)
        watch = await (await WorkerRegistry.open(log)).watch(on_change, check_seconds=0.2)
        # Given a registry whose bucket has taken many announcements (a high sequence) …
        for n in range(300):
            await worker.announce(WorkerInfo(worker_id="wrk_a", slots=400, free=n))
        await _until(lambda: bool(heard) and heard[-1][1] == 299)
        # … when the server is SIGKILLed and restarted (the in-memory bucket is lost) …
        private_nats.kill()
        private_nats.start()
        await _until_connected(log)
        back = asyncio.get_running_loop().time()
        # … then the worker's next announcement is heard within moments, not after the
        # new bucket's sequence has caught up with the old one.
        for _ in range(40):
            with contextlib.suppress(Exception):
                await worker.announce(WorkerInfo(worker_id="wrk_a", slots=400, free=7))
            if heard[-1][1] == 7:
                break
            await asyncio.sleep(0.1)
        assert heard[-1][1] == 7, "the watch never heard the worker again"
        assert heard[-1][0] - back < 2.0, heard[-1][0] - back
        await watch.stop()
    finally:
        await log.close()


async def test_a_silent_watch_starts_again_without_repeating_what_it_delivered(
    private_nats: EmbeddedNats,
) -> None:
    log = await EventLog.connect(private_nats.url)
    heard: list[int] = []

    async def on_change(worker_id: str, info: WorkerInfo | None) -> None:
        if info is not None:
            heard.append(info.free)

    try:
        await log.ensure_stream()
        worker = await WorkerRegistry.open(log)
        await worker.announce(WorkerInfo(worker_id="wrk_a", slots=2, free=2))
        # Given a watch that hears one announcement and then nothing …
        watch = await (await WorkerRegistry.open(log)).watch(
            on_change, check_seconds=0.05, quiet_seconds=0.2)
        await _until(lambda: heard == [2])
        # … when it stays silent past its quiet period, it starts again (a watch stalled
        # on a lost cluster node would stay silent forever) …
        await _until(lambda: watch.restarts >= 3)
        # … and the announcement every new watch delivers again is not passed on twice
        # (a dead worker's last entry must not read as a fresh one) …
        assert heard == [2]
        # … while a new announcement is.
        await worker.announce(WorkerInfo(worker_id="wrk_a", slots=2, free=1))
        await _until(lambda: heard == [2, 1])
        await watch.stop()
    finally:
        await log.close()


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")
