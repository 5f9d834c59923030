"""The lease: one holder at a time; it passes on when released or when its holder stops
renewing."""

from __future__ import annotations

import asyncio

from protoface.streams.eventlog import EventLog
from protoface.streams.lease import Lease


async def _lease(event_log: EventLog, role: str, holder: str, ttl: float = 1.0) -> Lease:
    return await Lease.open(event_log, role, holder, ttl=ttl)


async def test_only_one_holder_at_a_time(event_log: EventLog) -> None:
    first = await _lease(event_log, "role-one", "a")
    second = await _lease(event_log, "role-one", "b")
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.renew()
    assert not await second.renew()  # never held


async def test_a_released_lease_can_be_taken_at_once(event_log: EventLog) -> None:
    first = await _lease(event_log, "role-two", "a")
    second = await _lease(event_log, "role-two", "b")
    assert await first.acquire()
    await first.release()
    assert await second.acquire()
    assert not first.held


async def test_a_holder_that_stops_renewing_loses_the_lease_to_a_standby(
    event_log: EventLog,
) -> None:
    first = await _lease(event_log, "role-three", "a", ttl=1.0)
    second = await _lease(event_log, "role-three", "b", ttl=1.0)
    assert await first.acquire()
    stop = asyncio.Event()
    waited = asyncio.get_running_loop().time()
    await asyncio.wait_for(second.hold(stop), timeout=5.0)  # first never renews
    waited = asyncio.get_running_loop().time() - waited
    assert second.held and 0.5 < waited < 3.0
    assert not await first.renew()  # the old holder learns it lost it


async def test_keep_renews_until_stopped(event_log: EventLog) -> None:
    first = await _lease(event_log, "role-four", "a", ttl=0.6)
    second = await _lease(event_log, "role-four", "b", ttl=0.6)
    assert await first.acquire()
    stop = asyncio.Event()
    keeping = asyncio.create_task(first.keep(stop))
    await asyncio.sleep(1.5)  # more than twice the ttl
    assert not await second.acquire()
    stop.set()
    await keeping
    await first.release()
    assert await second.acquire()
