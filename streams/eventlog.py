"""The append-only event log on JetStream: append, load one aggregate, replay, follow.

One file-backed stream holds every event of every aggregate. Deletes and purges
are denied, so the log is the audit trail. Appends are conditional on the
aggregate's last subject sequence (its *version*), so two writers deciding from
the same state cannot both win; multi-event decisions go in one atomic batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import (
    APIError,
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from protoface.domain.events import AvatarEvent, Event, OrgEvent, SessionEvent, WebhookEvent
from protoface.domain.org import SessionsAdmitted
from protoface.streams import subjects
from protoface.streams.metrics import APPEND_SECONDS

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


class _PubAck(msgspec.Struct):
    """A JetStream publish ack (``{"stream":…,"seq":…}``) or its error."""

    seq: int | None = None
    error: dict[str, Any] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)

# An append unanswered this long is sent again (the same message id: stored once).
RESEND_SECONDS = 0.5

# Errors that mean "the log cannot be reached right now", as opposed to a refusal. In a
# cluster, a stream between leaders answers "no response from stream" (no responders)
# or 503 (JetStream not ready): both pass once a new leader is elected.
UNREACHABLE = (
    NatsTimeout, asyncio.TimeoutError, ConnectionClosedError, NoServersError,
    NoRespondersError, NoStreamResponseError, ServiceUnavailableError, OSError,
)


class LogUnavailable(Exception):
    """The event log cannot be reached; nothing was (knowingly) written."""


class ConcurrencyConflict(Exception):
    """The aggregate moved on since it was read: re-read, re-decide, retry."""


@dataclass(frozen=True, slots=True)
class Expect:
    """Append only if the last event on ``subject_filter`` has stream sequence ``version``."""

    subject_filter: str
    version: int


@dataclass(frozen=True, slots=True)
class Stored:
    """An event with its place in the log."""

    seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Consecutive stored events as the log holds them: sequences and encoded events."""

    seqs: list[int]
    data: list[bytes]

    def __len__(self) -> int:
        return len(self.seqs)

    def decoded(self) -> list[Stored]:
        return [Stored(seq, decode(data)) for seq, data in zip(self.seqs, self.data, strict=True)]


def _stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream delivery's reply subject, without building
    nats-py's whole ``Msg.Metadata``: ``$JS.ACK.<stream>.<consumer>.<delivered>.<seq>…``
    (9 tokens), or with a domain and account hash before the stream (12 tokens)."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


def subject_of(event: Event) -> str:
    event_type = type(event).__struct_config__.tag
    assert isinstance(event_type, str)
    if isinstance(event, SessionEvent):
        return subjects.session_event(event.org_id, event.session_id, event_type)
    if isinstance(event, SessionsAdmitted):
        # Every admission, single or grouped, on the one literal subject that the
        # admission's conditional append checks (see subjects.org_admissions).
        return subjects.org_admissions(event.org_id)
    if isinstance(event, OrgEvent):
        return subjects.org_event(event.org_id, event_type)
    if isinstance(event, WebhookEvent):
        return subjects.webhook_event(event.org_id, event.endpoint_id, event_type)
    if isinstance(event, AvatarEvent):
        return subjects.avatar_event(event.org_id, event.avatar_id, event_type)
    raise TypeError(f"no subject for {event!r}")


def history_of(event: Event) -> str:
    """The subject filter of ``event``'s aggregate (its whole history)."""
    if isinstance(event, SessionEvent):
        return subjects.session_history(event.session_id)
    if isinstance(event, OrgEvent):
        return subjects.org_history(event.org_id)
    if isinstance(event, WebhookEvent):
        return subjects.webhook_endpoint_history(event.endpoint_id)
    if isinstance(event, AvatarEvent):
        return subjects.avatar_history(event.avatar_id)
    raise TypeError(f"no aggregate for {event!r}")


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    event: Event = _decoder.decode(data)
    return event


def stream_config(replicas: int | None = None) -> StreamConfig:
    return StreamConfig(
        name=subjects.STREAM,
        subjects=[subjects.ALL_EVENTS],
        storage=StorageType.FILE,
        num_replicas=replicas or subjects.replicas(),
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
        # De-duplication by Nats-Msg-Id only needs to cover client retries;
        # idempotency keys live in their own bucket for 24 h.
        duplicate_window=120.0,
    )


class EventLog:
    """A connection to the event log. Create with :meth:`connect`."""

    def __init__(self, nc: Client, js: JetStreamContext, timeout: float, url: str = "") -> None:
        self.nc = nc
        self.js = js
        self.timeout = timeout
        self.url = url  # as given to connect: what another process needs to open the log
        self._acks = _Acks(nc)

    @classmethod
    async def connect(
        cls, url: str, *, name: str = "protoface", timeout: float = 2.0, replicas: int | None = None
    ) -> EventLog:
        log = await cls._open(_Client(), url, name, timeout)
        await log.ensure_stream(replicas)
        return log

    @classmethod
    async def open_for_replay(
        cls, url: str, *, name: str = "protoface-replay", timeout: float = 2.0
    ) -> EventLog:
        """A connection that only replays (a bulk reader such as the audit export's):
        it leaves the stream as it is, and it does not parse the headers stored with
        each event (see :class:`_ReplayClient`); :meth:`version` and :meth:`load`
        do not work on it."""
        return await cls._open(_ReplayClient(), url, name, timeout)

    @classmethod
    async def _open(cls, nc: Client, url: str, name: str, timeout: float) -> EventLog:
        # A cluster is given as comma-separated URLs (any one reachable will do; the
        # client also learns the others from the server it reaches).
        servers = [u.strip() for u in url.split(",") if u.strip()]
        # (nats-py annotates both waits as int; they are seconds, and fractions work.)
        options: dict[str, Any] = {"reconnect_time_wait": 0.25, "connect_timeout": timeout}
        await nc.connect(servers, name=name, max_reconnect_attempts=-1, **options)
        return cls(nc, nc.jetstream(timeout=timeout), timeout, url)

    async def ensure_stream(self, replicas: int | None = None) -> None:
        config = stream_config(replicas)
        try:
            await self.js.stream_info(subjects.STREAM)
        except NotFoundError:
            await self.js.add_stream(config)
            return
        await self.js.update_stream(config)

    async def close(self) -> None:
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()
        except Exception:  # reconnecting or already gone: nothing left to flush
            await self.nc.close()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    # ── Writing ─────────────────────────────────────────────────────────────────

    async def append(self, events: Sequence[Event], expect: Expect | None = None) -> int:
        """Append ``events`` in order; return the stream sequence of the last one.

        The first event is conditional on ``expect``; every later one on its
        predecessor. A failure part-way leaves a prefix of the decision stored,
        never a gap; the caller answers 503 and the supervisor settles the rest.

        Raises :class:`ConcurrencyConflict` when ``expect`` no longer holds and
        :class:`LogUnavailable` when the log cannot be reached.
        """
        if not events:
            raise ValueError("nothing to append")
        started = time.perf_counter()
        try:
            seq = await self._publish_chain(events, expect)
        except BadRequestError as exc:
            if exc.err_code in subjects.WRONG_LAST_SEQUENCES:
                raise ConcurrencyConflict(str(exc.description)) from exc
            raise
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        APPEND_SECONDS.observe(time.perf_counter() - started)
        return seq

    async def _publish(self, event: Event, expect: Expect | None) -> int:
        """One JetStream publish and its ack: what ``JetStreamContext.publish`` does,
        with a cheaper request (:class:`_Acks`) and the ack decoded by msgspec into
        the two fields used (``json.loads`` and the ``PubAck`` dataclass cost more).

        A publish unanswered for ``RESEND_SECONDS`` is sent again (same message id, so
        stored once) until ``timeout``: one made while a cluster elects the stream's
        leader is never answered, the next one after the election is (a single wait of
        ``timeout`` would keep a create waiting up to 2 s past the election)."""
        headers = {subjects.MSG_ID: event.id}
        if expect is not None:
            headers[subjects.EXPECTED_LAST_SUBJECT_SEQ] = str(expect.version)
            headers[subjects.EXPECTED_LAST_SUBJECT_SEQ_SUBJECT] = expect.subject_filter
        msg, resent = await self._send(subject_of(event), encode(event), headers)
        ack = _ack_decoder.decode(msg.data)
        if ack.error is not None:
            if resent and ack.error.get("err_code") in subjects.WRONG_LAST_SEQUENCES:
                # An earlier send may have been stored: the condition then fails on
                # our own event (the server checks it before the message id).
                mine = await self._stored_last(event)
                if mine is not None:
                    return mine
            APIError.from_error(ack.error)  # raises the matching APIError subclass
        if ack.seq is None:
            raise APIError(description=f"unexpected publish ack: {msg.data[:200]!r}")
        return ack.seq

    async def _send(self, subject: str, data: bytes, headers: dict[str, str]) -> tuple[Msg, bool]:
        """The publish's ack, and whether the publish had to be sent more than once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        resent = False
        while True:
            wait = min(RESEND_SECONDS, deadline - loop.time())
            try:
                return await self._acks.request(subject, data, headers, wait), resent
            except NatsTimeout:
                if deadline - loop.time() < RESEND_SECONDS / 10:
                    raise
            except NoStreamResponseError:
                left = deadline - loop.time()
                if left < RESEND_SECONDS / 10:
                    raise
                # "No stream" (between leaders) comes back at once: wait a little first.
                await asyncio.sleep(min(RESEND_SECONDS / 5, left / 2))
            resent = True

    async def _stored_last(self, event: Event) -> int | None:
        """The sequence of ``event`` if it is the last one stored on its subject."""
        found = await self._direct_get({"last_by_subj": subject_of(event)})
        if found is None or decode(found[1]).id != event.id:
            return None
        return found[0]

    async def _publish_chain(self, events: Sequence[Event], expect: Expect | None) -> int:
        # Each later event is conditional on the one before it, so a later event
        # is never stored without its predecessor. (JetStream's atomic batches
        # would do this in one step but cost more per batch and do not pipeline.)
        seq = await self._publish(events[0], expect)
        for event in events[1:]:
            seq = await self._publish(event, Expect(history_of(event), seq))
        return seq

    # ── Reading ─────────────────────────────────────────────────────────────────

    async def version(self, subject_filter: str) -> int:
        """The stream sequence of the last event on ``subject_filter`` (0 if none)."""
        found = await self._direct_get({"last_by_subj": subject_filter})
        return 0 if found is None else found[0]

    async def _direct_get(self, request: dict[str, object]) -> tuple[int, bytes] | None:
        """One stored message by a direct get (no consumer is created): its sequence and
        data, or None when there is none."""
        try:
            msg = await self.nc.request(
                f"$JS.API.DIRECT.GET.{subjects.STREAM}", json.dumps(request).encode(),
                timeout=self.timeout,
            )
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        headers = msg.headers or {}
        if headers.get("Status") == "404":
            return None
        if "Nats-Sequence" not in headers:
            raise LogUnavailable(f"unexpected direct-get reply: {headers.get('Status')}")
        return int(headers["Nats-Sequence"]), msg.data

    async def last_seq(self) -> int:
        try:
            info = await self.js.stream_info(subjects.STREAM)
        except UNREACHABLE as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return int(info.state.last_seq)

    async def load(self, subject_filter: str) -> tuple[list[Event], int]:
        """One aggregate's events in order and its version (0 when it has none)."""
        version = await self.version(subject_filter)
        if version == 0:
            return [], 0
        return [s.event for s in await self.read(subject_filter, 1, version)], version

    async def read(self, subject_filter: str, from_seq: int, until: int) -> list[Stored]:
        """The events on ``subject_filter`` from ``from_seq`` through ``until``, by direct
        gets (one request per event): for short reads, such as one aggregate's history,
        that many callers make at once. No consumer is created: a stream holds at most
        1,000 (nats-server's default), and a replay's ordered consumer lingers after
        it is unsubscribed."""
        found: list[Stored] = []
        seq = max(1, from_seq)
        while seq <= until:
            got = await self._direct_get({"seq": seq, "next_by_subj": subject_filter})
            if got is None or got[0] > until:
                break  # nothing more on the subject up to ``until``
            found.append(Stored(got[0], decode(got[1])))
            seq = got[0] + 1
        return found

    async def _replay_end(self, from_seq: int, until: int | None, subject: str) -> int | None:
        """Where a replay stops: the last event on ``subject`` that exists now (the
        consumer would wait in vain for a bound past it; an explicit ``until`` may lie
        beyond), or None when nothing lies between ``from_seq`` and that."""
        if subject == subjects.ALL_EVENTS:
            end = await self.last_seq()
        else:
            end = await self.version(subject)
        if until is not None:
            end = min(end, until)
        return end if end >= from_seq else None

    async def replay(
        self, from_seq: int = 1, *, until: int | None = None, subject: str = subjects.ALL_EVENTS
    ) -> AsyncIterator[Stored]:
        """Every stored event from ``from_seq`` up to ``until`` (default: the end now)."""
        end = await self._replay_end(from_seq, until, subject)
        if end is None:
            return
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self._ordered(subject, from_seq, on_msg)
        try:
            while True:
                msg = await asyncio.wait_for(queue.get(), timeout=max(self.timeout, 5.0))
                seq = int(msg.metadata.sequence.stream)
                if seq > end:
                    return
                yield Stored(seq, decode(msg.data))
                if seq == end or msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()

    async def replay_raw(
        self, from_seq: int = 1, *, until: int | None = None,
        subject: str = subjects.ALL_EVENTS, batch_size: int = 8192,
    ) -> AsyncGenerator[RawBatch, None]:
        """The stored events from ``from_seq`` up to ``until`` (default: the end now) as
        they are stored, undecoded, in batches: the bulk read path (audit, rebuilds).

        Per event it only keeps the payload and reads the stream sequence from the
        reply subject, so it runs close to nats-py's own ordered-consumer speed;
        the caller decodes (:func:`decode`) or hands the JSON on as it is. Raises
        :class:`LogUnavailable` when no event arrives for ``max(timeout, 5)`` seconds.
        """
        end = await self._replay_end(from_seq, until, subject)
        if end is None:
            return
        # Full batches wait here; a bounded queue lets a slow caller hold the
        # subscription back (and the server through flow control) instead of memory.
        ready: asyncio.Queue[RawBatch] = asyncio.Queue(maxsize=8)
        seqs: list[int] = []
        data: list[bytes] = []
        last = from_seq - 1
        done = False  # no more events wanted
        finished = False  # ... and the last batch is in ``ready``

        async def on_msg(msg: Msg) -> None:
            nonlocal seqs, data, last, done, finished
            if done:
                return
            seq = _stream_seq(msg.reply)
            if seq <= last:
                return  # re-delivered after a consumer reset
            if seq > end:
                done = True  # the filter's next event lies beyond the bound
            else:
                last = seq
                seqs.append(seq)
                data.append(msg.data)
                done = seq == end
            if done or len(seqs) >= batch_size:
                full, seqs, data = RawBatch(seqs, data), [], []
                await ready.put(full)
                finished = done

        sub = await self._ordered(subject, from_seq, on_msg)
        stall = max(self.timeout, 5.0)
        try:
            idle = 0.0
            while not (finished and ready.empty()):
                try:
                    batch = await asyncio.wait_for(ready.get(), 0.25)
                except TimeoutError:
                    # A slow trickle: hand on what has arrived rather than wait for a full batch.
                    if not seqs:
                        idle += 0.25
                        if idle >= stall:
                            raise LogUnavailable(f"replay stalled after sequence {last}") from None
                        continue
                    batch, seqs, data = RawBatch(seqs, data), [], []
                idle = 0.0
                if batch.seqs:
                    yield batch
        finally:
            done = True  # a caller that stopped early: drop the rest, unblock the callback
            while not ready.empty():
                ready.get_nowait()
            await sub.unsubscribe()

    async def follow(
        self, from_seq: int, handler: Callable[[Stored], Awaitable[None]],
        subject: str = subjects.ALL_EVENTS,
    ) -> Callable[[], Awaitable[None]]:
        """Deliver every event from ``from_seq`` on, then new ones as they land.

        Uses an ordered push consumer (the fastest read path in nats-py); it
        recreates itself after a reconnect. Returns a coroutine that stops it.
        """

        async def on_msg(msg: Msg) -> None:
            # The sequence from the reply subject: nats-py's whole Metadata costs
            # more than the rest of the delivery, and the API folds every event.
            await handler(Stored(_stream_seq(msg.reply), decode(msg.data)))

        sub = await self._ordered(subject, from_seq, on_msg)

        async def stop() -> None:
            await sub.unsubscribe()

        return stop

    async def _ordered(
        self, subject: str, from_seq: int, cb: Callable[[Msg], Awaitable[None]]
    ) -> Any:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(from_seq, 1)
        )
        return await self.js.subscribe(
            subject, stream=subjects.STREAM, cb=cb, ordered_consumer=True, config=config,
            pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30,
        )

    async def notify(self, subject: str, body: bytes) -> None:
        """Publish a notice on core NATS (not the log): e.g. webhook events for
        internal subscribers. Fire and forget, like any core NATS message."""
        await self.nc.publish(subject, body)

    async def healthy(self) -> bool:
        try:
            await self.js.stream_info(subjects.STREAM)
        except (APIError, *UNREACHABLE):
            return False
        return True


class _Client(Client):
    """nats-py's client, with one fix: a PONG whose waiting ``flush()`` was cancelled
    or timed out is counted and dropped. nats-py 2.16 calls ``set_result`` on that
    cancelled future: ``InvalidStateError`` stops the read loop, and from then on no
    reply, ack or delivery reaches this process (a client hanging up on the relay
    mid-signal did this to the API's one connection)."""

    async def _process_pong(self) -> None:
        if self._pongs:
            waiting = self._pongs.pop(0)  # PONGs answer PINGs in order
            if not waiting.done():
                waiting.set_result(True)
            self._pongs_received += 1
            self._pings_outstanding = 0


class _ReplayClient(_Client):
    """nats-py's client, except that the headers of a stored event delivered by a
    consumer (a ``$JS.ACK.`` reply subject) are dropped unparsed: a replay never reads
    them (each event's ``Nats-Msg-Id``), and nats-py parses every header block in
    Python, about a fifth of its CPU per delivered event. The server's own messages
    (flow control requests, idle heartbeats) have no such reply: theirs are parsed."""

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        if headers and reply.startswith(b"$JS.ACK."):
            headers = None
        await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]


class _Acks:
    """Requests whose replies come back on one inbox subscription, like nats-py's
    ``Client.request``, with a counter for the reply token instead of a fresh NUID
    and random bytes, and one timer instead of ``asyncio.wait_for``: per append,
    about a third less of the client's CPU (the API appends ~2 events per create)."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix = ""
        self._count = 0
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._ready = asyncio.Lock()

    async def request(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> Msg:
        if not self._prefix:
            await self._subscribe()
        self._count += 1
        reply = f"{self._prefix}{self._count}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._waiting[reply] = future
        timer = loop.call_later(timeout, _expire, future)
        try:
            await self.nc.publish(subject, payload, reply=reply, headers=headers)
            msg = await future
        finally:
            timer.cancel()
            self._waiting.pop(reply, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise NoStreamResponseError  # no stream takes this subject
        return msg

    async def _subscribe(self) -> None:
        async with self._ready:
            if self._prefix:
                return
            prefix = f"{self.nc.new_inbox()}."
            await self.nc.subscribe(prefix + "*", cb=self._on_reply)
            self._prefix = prefix

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)


def _expire(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(NatsTimeout())
