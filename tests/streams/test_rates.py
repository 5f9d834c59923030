"""The create rate shared by every API process (a KV bucket), on a real nats-server."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError

from protoface.streams.eventlog import EventLog
from protoface.streams.rates import CreateRates


async def test_creates_are_counted_up_to_the_limit_then_refused_until_one_leaves(
    event_log: EventLog,
) -> None:
    rates = await CreateRates.open(event_log.js, window=60.0)
    key = f"key_{uuid.uuid4().hex}"
    # Given two creates allowed a minute …
    assert await rates.hit(key, 2, now=1000.0) is None
    assert await rates.hit(key, 2, now=1010.0) is None
    # … the third in that minute is refused until the first leaves the window …
    assert await rates.hit(key, 2, now=1020.0) == 40
    # … and counted once it has.
    assert await rates.hit(key, 2, now=1061.0) is None


async def test_a_first_hit_that_loses_its_race_as_key_not_found_reads_again(
    event_log: EventLog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a first create whose conditional write loses to another process in the way
    # nats-py reports when its follow-up read finds nothing (seen under a cluster node's
    # death: it answered 500) …
    rates = await CreateRates.open(event_log.js, window=60.0)
    key = f"key_{uuid.uuid4().hex}"
    create = rates._kv.create
    lost: list[str] = []

    async def loses_once(k: str, value: bytes, **kwargs: Any) -> int:
        if not lost:
            lost.append(k)
            await create(k, value)  # the other process's write lands first
            raise KeyNotFoundError
        return await create(k, value, **kwargs)

    monkeypatch.setattr(rates._kv, "create", loses_once)
    # … when it is counted, then it reads again and counts on the winner's entry.
    assert await rates.hit(key, 5, now=1000.0) is None
    assert lost
    entry = await rates._kv.get(key)
    assert msgspec.msgpack.decode(entry.value or b"") == [1000.0, 1000.0]  # both counted
