"""The event log on a real nats-server: append-only storage, conditional appends,
de-duplication by event id, loading one aggregate, replay and follow.

All tests share the session-scoped ``event_log`` and isolate themselves with fresh
org and session ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StorageType
from nats.js.errors import APIError

from protoface.domain import session as s
from protoface.domain.events import Event
from protoface.streams import subjects
from protoface.streams.eventlog import (
    ConcurrencyConflict,
    EventLog,
    Expect,
    LogUnavailable,
    Stored,
    history_of,
    subject_of,
)
from protoface.streams.server import EmbeddedNats
from tests.streams.support import (
    created,
    creation,
    heartbeat,
    new_org,
    new_session,
    starting,
)
from tests.subjects import org_creations


async def collect(stored: AsyncIterator[Stored]) -> list[Stored]:
    return [item async for item in stored]


async def open_session(log: EventLog, org_id: str, session_id: str) -> int:
    """Create and queue a session; return its version (the seq of ``session.queued``)."""
    return await log.append(
        creation(org_id, session_id), Expect(subjects.session_history(session_id), 0)
    )


# ── The stream ──────────────────────────────────────────────────────────────────


async def test_stream_is_file_backed_and_denies_delete_and_purge(event_log: EventLog) -> None:
    info = await event_log.js.stream_info(subjects.STREAM)
    assert info.config.storage == StorageType.FILE
    assert info.config.deny_delete is True
    assert info.config.deny_purge is True
    assert info.config.subjects == [subjects.ALL_EVENTS]


async def test_a_stored_event_cannot_be_deleted_or_purged(event_log: EventLog) -> None:
    org, sid = new_org(), new_session()
    seq = await event_log.append([created(org, sid)])

    with pytest.raises(APIError):
        await event_log.js.delete_msg(subjects.STREAM, seq)
    with pytest.raises(APIError):
        await event_log.js.purge_stream(subjects.STREAM)

    events, version = await event_log.load(subjects.session_history(sid))
    assert version == seq
    assert [type(e) for e in events] == [s.SessionCreated]
    assert (await event_log.js.get_msg(subjects.STREAM, seq)).seq == seq


# ── Appending ───────────────────────────────────────────────────────────────────


async def test_append_returns_increasing_sequences(event_log: EventLog) -> None:
    org = new_org()
    seqs = [await event_log.append([created(org, new_session())]) for _ in range(5)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert await event_log.last_seq() >= seqs[-1]


async def test_each_event_is_stored_under_its_own_subject_with_its_id_as_msg_id(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    event = created(org, sid)
    seq = await event_log.append([event])

    raw = await event_log.js.get_msg(subjects.STREAM, seq)
    assert raw.subject == f"events.session.{org}.{sid}.created" == subject_of(event)
    assert raw.headers is not None
    assert raw.headers[subjects.MSG_ID] == event.id


async def test_appending_the_same_event_twice_stores_it_once(event_log: EventLog) -> None:
    org, sid = new_org(), new_session()
    event = created(org, sid)

    first = await event_log.append([event])
    again = await event_log.append([event])

    assert again == first
    events, version = await event_log.load(subjects.session_history(sid))
    assert events == [event]
    assert version == first


async def test_retrying_a_conditional_append_never_stores_the_event_twice(
    event_log: EventLog,
) -> None:
    # A retry after an ambiguous failure repeats the same events with the same
    # expectation. The log either answers with the stored seq (de-duplicated) or
    # refuses the now-stale expectation; either way the event is stored once.
    org, sid = new_org(), new_session()
    decision = creation(org, sid)
    expect = Expect(subjects.session_history(sid), 0)
    first = await event_log.append(decision, expect)

    try:
        again = await event_log.append(decision, expect)
    except ConcurrencyConflict:
        pass
    else:
        assert again == first

    events, version = await event_log.load(subjects.session_history(sid))
    assert events == decision
    assert version == first


async def test_an_append_whose_ack_is_lost_is_sent_again_and_stored_once(
    event_log: EventLog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a conditional append whose first send is stored but its ack lost (as when a
    # cluster's stream leader changes under it) …
    org, sid = new_org(), new_session()
    decision = creation(org, sid)
    request = event_log._acks.request
    lost: list[str] = []

    async def first_ack_lost(subject: str, payload: bytes, headers: dict[str, str],
                             timeout: float) -> Msg:
        reply = await request(subject, payload, headers, timeout)
        if not lost:
            lost.append(subject)
            raise NatsTimeout
        return reply

    monkeypatch.setattr(event_log._acks, "request", first_ack_lost)
    # … when it is appended, then the resend (whose condition now fails on the event
    # itself) is recognised as ours: the append answers its sequence …
    seq = await event_log.append(decision, Expect(subjects.session_history(sid), 0))
    assert lost
    # … and every event is stored once.
    events, version = await event_log.load(subjects.session_history(sid))
    assert events == decision
    assert version == seq


async def test_stale_expected_version_raises_conflict_and_stores_nothing(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    version = await open_session(event_log, org, sid)
    history = subjects.session_history(sid)
    last_before = await event_log.last_seq()

    for stale in (0, version - 1, version + 1_000):
        with pytest.raises(ConcurrencyConflict):
            await event_log.append([starting(org, sid)], Expect(history, stale))

    events, after = await event_log.load(history)
    assert after == version
    assert [type(e) for e in events] == [s.SessionCreated, s.SessionQueued]
    assert await event_log.last_seq() == last_before


async def test_conflict_on_the_first_event_stores_none_of_a_multi_event_decision(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    await event_log.append([created(org, sid)])  # someone else created it first
    last_before = await event_log.last_seq()

    with pytest.raises(ConcurrencyConflict):
        await event_log.append(creation(org, sid), Expect(subjects.session_history(sid), 0))

    assert await event_log.last_seq() == last_before


async def test_concurrent_appends_from_one_version_exactly_one_wins(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    history = subjects.session_history(sid)
    version = await open_session(event_log, org, sid)
    version = await event_log.append([starting(org, sid)], Expect(history, version))
    writers = 6

    for round_ in range(1, 26):
        contenders = [heartbeat(org, sid, frames=round_ * 100 + i) for i in range(writers)]
        results = await asyncio.gather(
            *(event_log.append([e], Expect(history, version)) for e in contenders),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, int)]
        losses = [r for r in results if isinstance(r, ConcurrencyConflict)]
        assert len(wins) == 1, results
        assert len(losses) == writers - 1, results
        assert wins[0] > version
        version = wins[0]
        assert await event_log.version(history) == version

    events, final = await event_log.load(history)
    assert final == version
    # created, queued, starting, then exactly one heartbeat per round.
    assert len(events) == 3 + 25
    heartbeats = [e for e in events if isinstance(e, s.SessionHeartbeat)]
    assert [h.frames // 100 for h in heartbeats] == list(range(1, 26))


async def test_multi_event_decision_lands_in_order_each_conditional_on_the_last(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    decision = creation(org, sid)
    assert [type(e) for e in decision] == [s.SessionCreated, s.SessionQueued]
    history = subjects.session_history(sid)

    last = await event_log.append(decision, Expect(history, 0))

    stored = await collect(event_log.replay(1, subject=history))
    assert [x.event for x in stored] == decision
    assert stored[-1].seq == last
    first_seq = stored[0].seq
    assert first_seq < last
    # The second event was published conditional on the first one's sequence.
    raw = await event_log.js.get_msg(subjects.STREAM, last)
    assert raw.headers is not None
    assert raw.headers[subjects.EXPECTED_LAST_SUBJECT_SEQ] == str(first_seq)
    assert raw.headers[subjects.EXPECTED_LAST_SUBJECT_SEQ_SUBJECT] == history
    first_raw = await event_log.js.get_msg(subjects.STREAM, first_seq)
    assert first_raw.headers is not None
    assert first_raw.headers[subjects.EXPECTED_LAST_SUBJECT_SEQ] == "0"


async def test_a_later_event_is_only_stored_right_after_its_predecessor(
    event_log: EventLog,
) -> None:
    # The chain makes event n+1 conditional on event n being its aggregate's last
    # event. An event whose aggregate has other history cannot follow: the append
    # stops there and leaves the prefix, never a gap.
    org, a, b = new_org(), new_session(), new_session()
    await open_session(event_log, org, b)
    a_created = created(org, a)
    b_starting = starting(org, b)
    assert history_of(b_starting) == subjects.session_history(b)

    with pytest.raises(ConcurrencyConflict):
        await event_log.append([a_created, b_starting])

    a_events, _ = await event_log.load(subjects.session_history(a))
    b_events, _ = await event_log.load(subjects.session_history(b))
    assert a_events == [a_created]
    assert b_starting not in b_events


async def test_empty_append_is_refused(event_log: EventLog) -> None:
    with pytest.raises(ValueError):
        await event_log.append([])


# ── Versions ────────────────────────────────────────────────────────────────────


async def test_version_of_a_filter_with_no_events_is_zero(event_log: EventLog) -> None:
    org, sid = new_org(), new_session()
    assert await event_log.version(subjects.session_history(sid)) == 0
    assert await event_log.version(org_creations(org)) == 0
    assert await event_log.version(subjects.org_history(org)) == 0
    assert await event_log.load(subjects.session_history(sid)) == ([], 0)


async def test_org_creations_and_session_history_are_separate_versions(
    event_log: EventLog,
) -> None:
    org, other_org, a, b = new_org(), new_org(), new_session(), new_session()
    creations = org_creations(org)

    a_queued = await open_session(event_log, org, a)
    a_created_seq = (await collect(event_log.replay(1, subject=subjects.session_history(a))))[0].seq
    assert await event_log.version(creations) == a_created_seq
    assert await event_log.version(subjects.session_history(a)) == a_queued

    # Progress on session a moves its history, not the org's creations.
    a_starting = await event_log.append(
        [starting(org, a)], Expect(subjects.session_history(a), a_queued)
    )
    assert await event_log.version(subjects.session_history(a)) == a_starting
    assert await event_log.version(creations) == a_created_seq

    # A creation in another org moves neither.
    await open_session(event_log, other_org, new_session())
    assert await event_log.version(creations) == a_created_seq

    # Admission: a creation conditional on the org's creations wins once...
    b_created = await event_log.append([created(org, b)], Expect(creations, a_created_seq))
    assert await event_log.version(creations) == b_created
    # ...and a second creation decided from the same (now stale) version loses,
    with pytest.raises(ConcurrencyConflict):
        await event_log.append([created(org, new_session())], Expect(creations, a_created_seq))
    # while session a's history, untouched by creations, still accepts its next event.
    await event_log.append([heartbeat(org, a, 10)], Expect(subjects.session_history(a), a_starting))


# ── Reading ─────────────────────────────────────────────────────────────────────


async def test_load_returns_exactly_one_sessions_events_in_order(event_log: EventLog) -> None:
    org, a, b = new_org(), new_session(), new_session()
    expected_a: list[Event] = []
    version_a = 0
    for i in range(3):
        # Interleave two sessions of the same org.
        if i == 0:
            batch_a: list[Event] = list(creation(org, a))
            await open_session(event_log, org, b)
        elif i == 1:
            batch_a = [starting(org, a)]
            await event_log.append([created(org, new_session())])
        else:
            batch_a = [heartbeat(org, a, 50), heartbeat(org, a, 75)]
        version_a = await event_log.append(
            batch_a, Expect(subjects.session_history(a), version_a)
        )
        expected_a += batch_a

    events, version = await event_log.load(subjects.session_history(a))
    assert events == expected_a
    assert version == version_a
    assert all(e.session_id == a for e in events if isinstance(e, s.SessionEvent))


async def test_replay_from_one_returns_every_event_in_sequence_order(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    decision = creation(org, sid)
    last = await event_log.append(decision)

    everything = await collect(event_log.replay(1))
    seqs = [x.seq for x in everything]
    # The log is append-only and nothing is ever deleted: 1, 2, 3, … without gaps.
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs[-1] >= last
    ours = {e.id for e in decision}
    mine = [x for x in everything if x.event.id in ours]
    assert [x.event for x in mine] == decision
    assert mine[-1].seq == last


async def test_replay_from_a_sequence_starts_there(event_log: EventLog) -> None:
    org = new_org()
    seqs = [await event_log.append([created(org, new_session())]) for _ in range(4)]
    k = seqs[1]

    tail = await collect(event_log.replay(k))
    assert tail[0].seq == k
    assert [x.seq for x in tail] == list(range(k, tail[-1].seq + 1))
    assert tail[-1].seq >= seqs[-1]

    bounded = await collect(event_log.replay(k, until=seqs[2]))
    assert [x.seq for x in bounded] == list(range(k, seqs[2] + 1))


async def test_replay_with_a_subject_filter(event_log: EventLog) -> None:
    org, other_org = new_org(), new_org()
    mine = [new_session() for _ in range(3)]
    for sid in mine:
        await open_session(event_log, org, sid)
        await open_session(event_log, other_org, new_session())

    creations = await collect(event_log.replay(1, subject=org_creations(org)))
    assert [x.event.session_id for x in creations] == mine  # type: ignore[union-attr]
    assert all(isinstance(x.event, s.SessionCreated) for x in creations)
    assert [x.seq for x in creations] == sorted(x.seq for x in creations)

    one = await collect(event_log.replay(1, subject=subjects.session_history(mine[1])))
    assert [type(x.event) for x in one] == [s.SessionCreated, s.SessionQueued]

    # from_seq applies to the filtered view: only mine[2]'s creation is at or after it.
    later = await collect(
        event_log.replay(creations[2].seq, subject=org_creations(org))
    )
    assert [x.seq for x in later] == [creations[2].seq]


async def test_replay_of_a_range_without_events_is_empty_and_prompt(
    event_log: EventLog,
) -> None:
    org, sid = new_org(), new_session()
    version = await open_session(event_log, org, sid)
    history = subjects.session_history(sid)
    last = await event_log.last_seq()

    async def replay(*args: int, **kwargs: object) -> list[Stored]:
        return await asyncio.wait_for(collect(event_log.replay(*args, **kwargs)), 2.0)  # type: ignore[arg-type]

    assert await replay(last + 1) == []
    assert await replay(last + 1, until=last + 10) == []
    assert await replay(version + 1, subject=history) == []
    # An explicit upper bound past the filter's last event: nothing in range.
    assert await replay(version + 1, until=version + 1_000, subject=history) == []
    assert await replay(1, until=last, subject=subjects.session_history(new_session())) == []


async def test_follow_delivers_existing_then_new_events(event_log: EventLog) -> None:
    org, sid = new_org(), new_session()
    history = subjects.session_history(sid)
    version = await open_session(event_log, org, sid)
    first = (await collect(event_log.replay(1, subject=history)))[0].seq

    received: asyncio.Queue[Stored] = asyncio.Queue()

    async def handler(stored: Stored) -> None:
        if isinstance(stored.event, s.SessionEvent) and stored.event.session_id == sid:
            received.put_nowait(stored)

    stop = await event_log.follow(first, handler)
    try:
        existing = [await asyncio.wait_for(received.get(), 5) for _ in range(2)]
        assert [x.seq for x in existing] == [first, version]

        new = await event_log.append([starting(org, sid)], Expect(history, version))
        arrived = await asyncio.wait_for(received.get(), 5)
        assert arrived.seq == new
        assert isinstance(arrived.event, s.SessionStarting)
    finally:
        await stop()


async def test_follow_with_a_subject_filter_sees_only_that_subject(event_log: EventLog) -> None:
    org, sid, other = new_org(), new_session(), new_session()
    history = subjects.session_history(sid)
    version = await open_session(event_log, org, sid)

    received: asyncio.Queue[Stored] = asyncio.Queue()

    async def handler(stored: Stored) -> None:
        received.put_nowait(stored)

    stop = await event_log.follow(1, handler, subject=history)
    try:
        existing = [await asyncio.wait_for(received.get(), 5) for _ in range(2)]
        assert [type(x.event) for x in existing] == [s.SessionCreated, s.SessionQueued]
        await open_session(event_log, org, other)
        new = await event_log.append([starting(org, sid)], Expect(history, version))
        arrived = await asyncio.wait_for(received.get(), 5)
        assert arrived.seq == new
        assert received.empty()
    finally:
        await stop()


# ── When the log is unreachable ─────────────────────────────────────────────────


async def _close(log: EventLog) -> None:
    try:
        await asyncio.wait_for(log.close(), 5)
    except Exception:
        await log.nc.close()


async def _until_appended(log: EventLog, events: list[Event], within: float = 15.0) -> int:
    """Append, retrying while the restarted server is still coming back."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await log.append(events)
        except LogUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_append_raises_log_unavailable_promptly_and_recovers_after_restart(
    private_nats: EmbeddedNats,
) -> None:
    log = await EventLog.connect(private_nats.url, name="crash-test", timeout=0.5)
    try:
        org, sid = new_org(), new_session()
        history = subjects.session_history(sid)
        before = creation(org, sid)
        version = await log.append(before, Expect(history, 0))

        private_nats.kill()  # SIGKILL: no shutdown, no flush by the server

        lost = starting(org, sid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LogUnavailable):
            await asyncio.wait_for(log.append([lost], Expect(history, version)), 10)
        assert loop.time() - started < 3.0
        with pytest.raises(LogUnavailable):
            await asyncio.wait_for(log.version(history), 10)
        with pytest.raises(LogUnavailable):
            await asyncio.wait_for(log.last_seq(), 10)
        assert await log.healthy() is False

        private_nats.start()  # same port, same store directory

        after = heartbeat(org, sid, 10)
        # The failed append may or may not have reached the server (a publish can sit
        # in the client's reconnect buffer); retrying it stores it at most once.
        await _until_appended(log, [lost])
        last = await _until_appended(log, [after])
        events, now_version = await log.load(history)
        assert events[:2] == before  # written before the crash, still there
        assert events[2:] == [lost, after]
        assert now_version == last
        assert await log.healthy() is True
    finally:
        await _close(log)


async def test_a_cancelled_flush_leaves_the_connection_working(
    nats_server: EmbeddedNats,
) -> None:
    # A caller cancelled while it waits in ``flush()`` (the relay, when its client
    # hangs up mid-signal) leaves a cancelled future for a PONG that still arrives.
    log = await EventLog.connect(nats_server.url, name="cancelled-flush", timeout=2.0)
    try:
        for _ in range(3):
            flushing = asyncio.create_task(log.nc.flush())
            await asyncio.sleep(0)  # its PING is sent; the PONG is not read yet
            flushing.cancel()
        await asyncio.sleep(0.2)  # the PONGs arrive
        org, sid = new_org(), new_session()
        assert await log.append(creation(org, sid)) > 0
        await log.nc.flush(timeout=2)
    finally:
        await _close(log)


async def test_restart_keeps_every_acknowledged_event(private_nats: EmbeddedNats) -> None:
    log = await EventLog.connect(private_nats.url, name="crash-test", timeout=0.5)
    try:
        org = new_org()
        acked = []
        for _ in range(20):
            sid = new_session()
            acked.append((await log.append(creation(org, sid)), sid))
        last_before = await log.last_seq()
    finally:
        await _close(log)
    private_nats.kill()
    private_nats.start()

    log = await EventLog.connect(private_nats.url, name="crash-test", timeout=2.0)
    try:
        assert await log.last_seq() == last_before
        everything = await collect(log.replay(1))
        assert [x.seq for x in everything] == list(range(1, last_before + 1))
        for seq, sid in acked:
            events, version = await log.load(subjects.session_history(sid))
            assert version == seq
            assert [type(e) for e in events] == [s.SessionCreated, s.SessionQueued]
        info = await log.js.stream_info(subjects.STREAM)
        assert info.config.deny_delete and info.config.deny_purge
    finally:
        await _close(log)


async def test_read_gives_one_aggregates_events_up_to_a_sequence_without_a_consumer(
    event_log: EventLog,
) -> None:
    # Given a session whose events are interleaved with another session's,
    org, mine, other = new_org(), new_session(), new_session()
    await event_log.append(creation(org, mine))
    await event_log.append(creation(org, other))
    at_starting = await event_log.append([starting(org, mine)])
    await event_log.append([heartbeat(org, other, 25)])
    await event_log.append([heartbeat(org, mine, 50)])
    consumers = (await event_log.js.stream_info(subjects.STREAM)).state.consumer_count
    # when its history is read up to its starting event,
    read = await event_log.read(subjects.session_history(mine), 1, at_starting)
    # then it holds exactly that session's events through that sequence, in order,
    kinds = [type(stored.event).__struct_config__.tag for stored in read]
    assert kinds == ["session.created", "session.queued", "session.starting"]
    assert read[-1].seq == at_starting and all(e.event.session_id == mine for e in read)
    assert [e.seq for e in read] == sorted(e.seq for e in read)
    # read from after its first event it starts there, and reading left no consumer behind.
    assert [e.seq for e in await event_log.read(
        subjects.session_history(mine), read[0].seq + 1, at_starting)] == [
        e.seq for e in read[1:]]
    after = (await event_log.js.stream_info(subjects.STREAM)).state.consumer_count
    assert after == consumers
