"""The log's bulk read path: stored events undecoded, in batches (the audit export)."""

from __future__ import annotations

import asyncio
import contextlib

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect, RawBatch, decode, encode
from tests.streams.support import creation, heartbeat, new_org, new_session, starting


async def some_events(log: EventLog, org: str, sessions: int) -> list[str]:
    ids = []
    for _ in range(sessions):
        sid = new_session()
        seq = await log.append(creation(org, sid), Expect(subjects.session_history(sid), 0))
        seq = await log.append([starting(org, sid)], Expect(subjects.session_history(sid), seq))
        await log.append([heartbeat(org, sid, 50)], Expect(subjects.session_history(sid), seq))
        ids.append(sid)
    return ids


async def batches(log: EventLog, *args: int, **kwargs: object) -> list[RawBatch]:
    return [b async for b in log.replay_raw(*args, **kwargs)]  # type: ignore[arg-type]


async def test_batches_hold_every_stored_event_as_stored_in_order(event_log: EventLog) -> None:
    await some_events(event_log, new_org(), 5)
    end = await event_log.last_seq()
    got = await batches(event_log, 1, batch_size=7)
    assert all(0 < len(b) <= 7 for b in got)
    seqs = [seq for b in got for seq in b.seqs]
    assert seqs == list(range(1, end + 1))
    expected = [(x.seq, x.event) async for x in event_log.replay(1)]
    decoded = [(x.seq, x.event) for b in got for x in b.decoded()]
    assert decoded == expected
    assert [d for b in got for d in b.data][-1] == encode(expected[-1][1])


async def test_a_range_and_a_subject_filter(event_log: EventLog) -> None:
    org = new_org()
    first = await event_log.last_seq() + 1
    sids = await some_events(event_log, org, 3)
    middle = first + 5
    got = await batches(event_log, first, until=middle, batch_size=2)
    assert [seq for b in got for seq in b.seqs] == list(range(first, middle + 1))

    history = subjects.session_history(sids[1])
    got = await batches(event_log, 1, subject=history)
    events = [decode(d) for b in got for d in b.data]
    assert [e.session_id for e in events] == [sids[1]] * 4  # type: ignore[union-attr]
    # Bounded before the filter's last event: stops at the bound, not at the filter's end.
    last_but_one = [seq for b in got for seq in b.seqs][-2]
    bounded = await batches(event_log, 1, until=last_but_one, subject=history)
    assert [seq for b in bounded for seq in b.seqs][-1] == last_but_one
    assert sum(len(b) for b in bounded) == 3


async def test_nothing_to_read_yields_nothing_promptly(event_log: EventLog) -> None:
    end = await event_log.last_seq()
    assert await batches(event_log, end + 1) == []
    assert await batches(event_log, 1, subject=subjects.session_history(new_session())) == []


async def test_a_caller_that_stops_early_releases_the_subscription(event_log: EventLog) -> None:
    await some_events(event_log, new_org(), 3)
    subscriptions = len(event_log.nc._subs)
    async with contextlib.aclosing(event_log.replay_raw(1, batch_size=2)) as reader:
        async for first in reader:
            assert len(first) == 2
            break
    assert len(event_log.nc._subs) == subscriptions
    end = await event_log.last_seq()
    assert sum(len(b) for b in await batches(event_log, 1)) == end  # the connection still reads


async def test_a_slow_caller_still_gets_the_last_batch(event_log: EventLog) -> None:
    """Batches of one fill the bounded queue; the last one waits for room, and arrives."""
    await some_events(event_log, new_org(), 10)
    end = await event_log.last_seq()
    start = end - 39
    got: list[int] = []
    async for batch in event_log.replay_raw(start, batch_size=1):
        got += batch.seqs  # no await between batches: the queue stays full
    assert got == list(range(start, end + 1))


async def test_a_replay_only_connection_reads_the_same_without_parsing_headers(
    event_log: EventLog,
) -> None:
    """The audit's reader processes connect with open_for_replay: same batches, while
    the stored events' own headers (their Nats-Msg-Id) are dropped unparsed."""
    await some_events(event_log, new_org(), 3)
    end = await event_log.last_seq()
    reader = await EventLog.open_for_replay(event_log.url)
    try:
        got = await batches(reader, 1, until=end, batch_size=5)
        delivered: list[object] = []

        async def keep(msg: object) -> None:
            delivered.append(msg)

        sub = await reader._ordered(subjects.ALL_EVENTS, end, keep)
        while not delivered:
            await asyncio.sleep(0.01)
        await sub.unsubscribe()
    finally:
        await reader.close()
    expected = await batches(event_log, 1, until=end, batch_size=5)
    assert [(b.seqs, b.data) for b in got] == [(b.seqs, b.data) for b in expected]
    assert delivered[0].headers is None  # type: ignore[attr-defined]
