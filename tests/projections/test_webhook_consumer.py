"""Webhook deliveries ride the durable consumer: a retrying delivery is an unacked message
that JetStream hands out again when the retry is due, a restarted dispatcher resumes from
the consumer and the ``webhook.*`` events alone (never folding the whole log), a session's
later event waits while an earlier one is retried, and an endpoint only gets the events
stored after it was created.

Each test has a NATS server of its own, so the consumer's state is the test's alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protoface.api.config import load_keyring
from protoface.api.sessions.schemas import session_view
from protoface.api.webhooks.service import ENDPOINT, new_secret
from protoface.domain import ids, session, webhook
from protoface.domain.sealing import Keyring
from protoface.domain.session import Claim
from protoface.domain.webhook import DeliveryAttempted
from protoface.projections.webhooks.dispatcher import Dispatcher, DispatchSettings
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect, Stored
from protoface.streams.server import EmbeddedNats, free_port
from protoface.streams.webhooks import Backlog
from tests.projections.test_webhook_delivery import Receiver, _until, receiver
from tests.streams.support import creation, new_org, new_session

__all__ = ["receiver"]  # the fixture, shared with the session webhook specs


class Watched(EventLog):
    """The event log, noting every subject it is asked to follow, replay or read."""

    followed: list[str]
    replayed: list[str]

    @classmethod
    def of(cls, log: EventLog) -> Watched:
        watched = cls(log.nc, log.js, log.timeout, log.url)
        watched.followed, watched.replayed = [], []
        return watched

    async def follow(self, from_seq: int, handler: Callable[[Stored], Awaitable[None]],
                     subject: str = subjects.ALL_EVENTS) -> Callable[[], Awaitable[None]]:
        self.followed.append(subject)
        return await super().follow(from_seq, handler, subject)

    def replay(self, from_seq: int = 1, *, until: int | None = None,
               subject: str = subjects.ALL_EVENTS) -> AsyncIterator[Stored]:
        self.replayed.append(subject)
        return super().replay(from_seq, until=until, subject=subject)

    async def read(self, subject_filter: str, from_seq: int, until: int) -> list[Stored]:
        self.replayed.append(subject_filter)
        return await super().read(subject_filter, from_seq, until)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "js",
                          log_file=tmp_path / "nats.log")
    server.start()
    try:
        event_log = await EventLog.connect(server.url)
        yield event_log
        await event_log.close()
    finally:
        server.stop()


@pytest.fixture
def keyring(data_dir: Path) -> Keyring:
    return load_keyring(data_dir / "seal-keys.json", create=False)


async def _endpoint(log: EventLog, keyring: Keyring, receiver: Receiver, org_id: str,
                    path: str, *event_types: str) -> str:
    """Register an endpoint exactly as the API does (sealed secret, conditional append)."""
    endpoint_id, secret = ids.new_id(ENDPOINT), new_secret()
    events = webhook.decide(webhook.CreateEndpoint(
        org_id=org_id, endpoint_id=endpoint_id, url=f"http://127.0.0.1:{receiver.port}{path}",
        secret_sealed=keyring.seal(secret, endpoint_id), event_types=event_types,
        now=datetime.now(UTC)), None, ids.new_event_id)
    await log.append(events, Expect(subjects.webhook_endpoint_history(endpoint_id), 0))
    receiver.secrets[path] = secret
    return endpoint_id


async def _queued_session(log: EventLog, org_id: str) -> tuple[str, int]:
    """A new session, created and queued: its id and the queued event's sequence."""
    session_id = new_session()
    return session_id, await log.append(creation(org_id, session_id))


async def _claim(log: EventLog, session_id: str) -> int:
    """The session starts (``session.starting``), decided on its history as a worker does."""
    history = subjects.session_history(session_id)
    events, version = await log.load(history)
    state = None
    for event in events:
        assert isinstance(event, session.SessionEvent)
        state = session.evolve(state, event)
    decided = session.decide(Claim(session_id=session_id, now=datetime.now(UTC),
                                   worker_id="wrk_test"), state, ids.new_event_id)
    return await log.append(decided, Expect(history, version))


async def _attempts(log: EventLog, endpoint_id: str) -> list[DeliveryAttempted]:
    events, _ = await log.load(subjects.webhook_endpoint_history(endpoint_id))
    return [e for e in events if isinstance(e, DeliveryAttempted)]


async def _until_attempts(log: EventLog, endpoint_id: str, count: int,
                          timeout: float = 15.0) -> list[DeliveryAttempted]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found := await _attempts(log, endpoint_id)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(found)} attempts"
        await asyncio.sleep(0.02)
    return found


def _dispatcher(log: EventLog, keyring: Keyring, *schedule: float) -> Dispatcher:
    return Dispatcher(log, keyring, session_view,
                      DispatchSettings(allow_private=True, schedule=schedule))


async def _backlog(dispatcher: Dispatcher) -> Backlog:
    assert dispatcher.queue is not None
    return await dispatcher.queue.backlog()


@dataclass
class Retrying:
    """A started dispatcher, and a session.queued event whose first attempt failed."""

    org_id: str
    endpoint_id: str
    seq: int
    dispatcher: Dispatcher


async def _retrying(log: EventLog, keyring: Keyring, receiver: Receiver,
                    *schedule: float) -> Retrying:
    org_id = new_org()
    endpoint_id = await _endpoint(log, keyring, receiver, org_id, "/flaky", "session.queued")
    dispatcher = _dispatcher(log, keyring, *schedule)
    await dispatcher.start()
    try:
        _, seq = await _queued_session(log, org_id)
        await _until_attempts(log, endpoint_id, 1)
    except BaseException:
        await dispatcher.stop()
        raise
    return Retrying(org_id, endpoint_id, seq, dispatcher)


async def test_given_a_failing_endpoint_when_the_delivery_is_retried_then_its_message_stays_unacked_and_each_retry_is_a_redelivery(  # noqa: E501
    log: EventLog, keyring: Keyring, receiver: Receiver,
) -> None:
    started = await _retrying(log, keyring, receiver, 0.0, 1.0, 1.0)
    dispatcher, endpoint_id, queued_seq = started.dispatcher, started.endpoint_id, started.seq
    try:
        waiting = await _backlog(dispatcher)  # handed back until attempt 2 is due
        assert (waiting.unacked, waiting.redelivered) == (1, 0)
        assert waiting.acked_through < queued_seq

        await _until_attempts(log, endpoint_id, 2)
        retried = await _backlog(dispatcher)  # attempt 2 came from a redelivery
        assert (retried.unacked, retried.redelivered) == (1, 1)

        await _until(lambda: len(receiver.delivered) == 1)
        settled: list[Backlog] = []

        async def acked() -> bool:
            settled.append(await _backlog(dispatcher))
            return settled[-1].unacked == 0

        deadline = asyncio.get_running_loop().time() + 5
        while not await acked():
            assert asyncio.get_running_loop().time() < deadline, settled[-1]
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert settled[-1] == Backlog(unacked=0, undelivered=0, redelivered=0,
                                  acked_through=queued_seq)
    assert [o for _, _, o in receiver.requests] == ["500", "500", "204"]


async def test_given_a_dispatcher_stopped_mid_retry_when_another_starts_then_it_resumes_at_the_recorded_time_without_folding_the_log(  # noqa: E501
    log: EventLog, keyring: Keyring, receiver: Receiver,
) -> None:
    started = await _retrying(log, keyring, receiver, 0.0, 2.5, 0.05)
    endpoint_id = started.endpoint_id
    await started.dispatcher.stop()  # while the retry waits on the consumer
    assert len(receiver.requests) == 1
    # Unrelated sessions of another org, appended after the stop: the new dispatcher
    # hands each out once and sends nothing for them.
    for _ in range(30):
        await _queued_session(log, new_org())

    watched = Watched.of(log)
    second = _dispatcher(watched, keyring, 0.0, 2.5, 0.05)
    await second.start()
    try:
        await _until(lambda: len(receiver.delivered) == 1)
        await asyncio.sleep(0.3)  # nothing more arrives
    finally:
        await second.stop()

    recorded = await _attempts(log, endpoint_id)
    assert [(a.attempt, a.outcome) for a in recorded] == [
        (1, "retrying"), (2, "retrying"), (3, "delivered")]
    assert len({a.webhook_id for a in recorded}) == 1
    assert recorded[0].next_attempt_at is not None
    assert recorded[1].at >= recorded[0].next_attempt_at
    assert [o for _, _, o in receiver.requests] == ["500", "500", "204"]
    # Started from the webhook events and the consumer alone: it followed events.webhook.>,
    # and read nothing but single sessions' histories (never the whole log).
    assert watched.followed == [subjects.WEBHOOK_EVENTS]
    assert watched.replayed and all(
        s.startswith("events.session.*.sess_") for s in watched.replayed)


async def test_given_an_earlier_event_being_retried_when_a_later_event_of_the_session_comes_then_it_waits_even_across_a_restart(  # noqa: E501
    log: EventLog, keyring: Keyring, receiver: Receiver,
) -> None:
    org_id = new_org()
    endpoint_id = await _endpoint(log, keyring, receiver, org_id, "/flaky",
                                  "session.queued", "session.starting")
    first = _dispatcher(log, keyring, 0.0, 1.5, 0.05)
    await first.start()
    try:
        session_id, _ = await _queued_session(log, org_id)
        await _claim(log, session_id)  # session.starting, while session.queued fails
        await _until_attempts(log, endpoint_id, 1)
        await asyncio.sleep(0.5)  # session.starting is handed out and must wait
        assert len(await _attempts(log, endpoint_id)) == 1
    finally:
        await first.stop()
    second = _dispatcher(log, keyring, 0.0, 1.5, 0.05)
    await second.start()
    try:
        await _until(lambda: len(receiver.delivered) == 2)
    finally:
        await second.stop()

    assert [p["type"] for p in receiver.delivered] == ["session.queued", "session.starting"]
    recorded = await _attempts(log, endpoint_id)
    queued, starting = (webhook.webhook_id(i) for i in dict.fromkeys(
        a.source_event_id for a in recorded))
    # Every attempt of session.starting comes after session.queued was delivered.
    assert [(a.webhook_id, a.outcome) for a in recorded] == [
        (queued, "retrying"), (queued, "retrying"), (queued, "delivered"),
        (starting, "retrying"), (starting, "retrying"), (starting, "delivered")]


async def test_given_an_endpoint_created_after_an_event_when_that_event_is_retried_then_the_endpoint_never_gets_it(  # noqa: E501
    log: EventLog, keyring: Keyring, receiver: Receiver,
) -> None:
    before = await _retrying(log, keyring, receiver, 0.0, 1.0, 0.05)  # its event is retried
    try:
        new = await _endpoint(log, keyring, receiver, before.org_id, "/busy", "session.queued")
        await _until(lambda: len(receiver.delivered) == 1)  # the first event's retries ran
        await _queued_session(log, before.org_id)
        await _until(lambda: len(receiver.delivered) == 3)
        await asyncio.sleep(0.3)
    finally:
        await before.dispatcher.stop()

    first, second = dict.fromkeys(a.webhook_id for a in await _attempts(log, before.endpoint_id))
    got = await _attempts(log, new)
    assert {a.webhook_id for a in got} == {second} and got[-1].outcome == "delivered"
    assert {msg_id for path, msg_id, _ in receiver.requests if path == "/busy"} == {second}
    assert first != second


async def test_given_a_fetch_that_swallows_a_cancel_when_the_dispatcher_stops_then_it_stops(
    log: EventLog, keyring: Keyring, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # nats-py's fetch waits in asyncio.wait_for, which on Python 3.11 can lose a cancel
    # that lands as its timeout fires: `protoface up` then hung on SIGTERM. The stop must
    # not depend on the cancel arriving.
    dispatcher = _dispatcher(log, keyring, 0.0)
    await dispatcher.start()
    assert dispatcher.queue is not None
    fetch, lost = dispatcher.queue.next_batch, []

    async def swallowing(limit: int, timeout: float = 1.0) -> list[object]:
        try:
            return await fetch(limit, timeout)  # type: ignore[return-value]
        except asyncio.CancelledError:
            if lost:
                raise
            lost.append(True)
            return []  # the first cancel is lost, as inside wait_for

    monkeypatch.setattr(dispatcher.queue, "next_batch", swallowing)
    await asyncio.sleep(0.3)  # the pump is in a fetch
    stopping = asyncio.create_task(dispatcher.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5.0)
    if not done:  # a second cancel ends it, so the failure does not hang the suite
        stopping.cancel()
        await asyncio.gather(stopping, return_exceptions=True)
    assert done, "the dispatcher did not stop"
