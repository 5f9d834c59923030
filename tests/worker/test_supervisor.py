"""The supervisor's own clock: how often it looks at the worker registry.

(What it decides, failing a lost worker's sessions and ending sessions out of credits,
is tested end to end in tests/e2e/test_workers.py and tests/api/test_usage.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest

from projections.sessions import SessionsModel
from streams.eventlog import EventLog
from worker.supervisor import CHECKS_PER_HEARTBEAT, Supervisor


async def test_checks_keep_a_fixed_rate_however_long_each_takes(
    event_log: EventLog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a supervisor at a 0.4 s heartbeat, whose checks each take 60 ms…
    heartbeat = 0.4
    supervisor = Supervisor(event_log, SessionsModel(), heartbeat_seconds=heartbeat)
    began: list[float] = []

    async def slow_check() -> None:
        began.append(time.monotonic())
        await asyncio.sleep(0.06)

    monkeypatch.setattr(supervisor, "check", slow_check)
    shutdown = asyncio.Event()
    running = asyncio.create_task(supervisor.run(shutdown))
    await asyncio.sleep(1.2)
    shutdown.set()
    await running
    # …then a check starts every quarter heartbeat, not a pause after each one ends
    # (a lost worker would be noticed that much later with every slow check).
    gaps = [b - a for a, b in itertools.pairwise(began)]
    assert statistics.median(gaps) == pytest.approx(heartbeat / CHECKS_PER_HEARTBEAT, abs=0.03)
