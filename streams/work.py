"""How workers find work and announce themselves.

* Queued sessions: a durable pull consumer on ``session.queued`` events shared by
  every worker process. A message is acked once its claim was decided (won or
  lost, a few milliseconds); a worker that dies holding one lets it be redelivered
  after ``ack_wait``, so a crash delays that session's start by at most that.
* The worker registry: a KV bucket, one key per live worker with its free slots,
  refreshed every heartbeat. Readers notice a worker is gone when its entry stops
  changing. The bucket is in memory: a server restart loses it (see ``RegistryWatch``).
* Session signals: a core-NATS subscription to a session's events as they are
  stored, so a worker hears ``session.ending`` within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar, Self

import msgspec
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    NoKeysError,
    NoStreamResponseError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from protoface.domain.events import Event
from protoface.streams import subjects
from protoface.streams.eventlog import UNREACHABLE, EventLog, LogUnavailable, decode


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's announcement. Fields after ``draining`` came with capacity by cost
    (``domain.capacity``); an older worker's entry decodes with them empty, and is then
    counted by its free slots alone."""

    worker_id: str
    slots: int
    free: int
    sessions: tuple[str, ...] = ()
    draining: bool = False
    capacity: float = 0.0  # cost units; 0: unknown (an older worker)
    used: float = 0.0  # cost units of the sessions it runs
    costs: dict[str, float] = msgspec.field(default_factory=dict)  # tier → units a session
    room: dict[str, int] = msgspec.field(default_factory=dict)  # tier → sessions that fit
    overloaded: str | None = None  # why it stopped claiming, while it has


_info_encoder = msgspec.json.Encoder()
_info_decoder = msgspec.json.Decoder(WorkerInfo)


class Job:
    """An event handed to one worker by a work queue; ``done()`` once it is handled.

    ``seq`` is the event's stream sequence, ``deliveries`` how many times the queue
    has handed it out (1 the first time; a redelivery after ``later`` or after
    ``ack_wait`` counts up)."""

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.event: Event = decode(msg.data)
        metadata = msg.metadata
        self.seq = int(metadata.sequence.stream)
        self.deliveries = int(metadata.num_delivered or 1)

    async def done(self) -> None:
        await self._msg.ack()

    async def later(self, delay: float = 1.0) -> None:
        """Hand it back, to be delivered again in ``delay`` seconds (0: at once)."""
        await self._msg.nak(delay=delay if delay > 0 else None)

    async def working(self) -> None:
        """Still on it: restart the ``ack_wait`` clock, so it is not handed to another."""
        await self._msg.in_progress()


class EventQueue:
    """A durable pull consumer on one kind of event, shared by every worker process:
    each event goes to one of them, and comes back after ``ack_wait`` if that one dies."""

    durable: ClassVar[str]
    subject: ClassVar[str]
    ack_wait: ClassVar[float]
    max_ack_pending: ClassVar[int]

    def __init__(self, sub: object) -> None:
        self._sub = sub

    @classmethod
    async def open(cls, log: EventLog, ack_wait: float | None = None) -> Self:
        # The settings apply only when the consumer does not exist yet (an existing
        # durable consumer is bound as it is).
        return await cls._bind(log, ConsumerConfig(
            durable_name=cls.durable, filter_subject=cls.subject,
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait or cls.ack_wait, max_ack_pending=cls.max_ack_pending,
        ))

    @classmethod
    async def _bind(cls, log: EventLog, config: ConsumerConfig) -> Self:
        sub = await log.js.pull_subscribe(
            cls.subject, durable=cls.durable, stream=subjects.STREAM, config=config,
        )
        return cls(sub)

    async def next(self, timeout: float = 1.0) -> Job | None:
        jobs = await self.next_batch(1, timeout)
        return jobs[0] if jobs else None

    async def next_batch(self, limit: int, timeout: float = 1.0) -> list[Job]:
        """Up to ``limit`` jobs: whatever is ready now, else the first within ``timeout``."""
        try:
            msgs = await self._sub.fetch(limit, timeout=timeout)  # type: ignore[attr-defined]
        except (TimeoutError, NatsTimeout):
            return []
        except (*UNREACHABLE, APIError) as exc:
            # 503 while a cluster elects the stream's leader, or the server is gone: the
            # durable consumer stays; the caller waits and fetches again.
            raise LogUnavailable(type(exc).__name__) from exc
        return [Job(msg) for msg in msgs]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()  # type: ignore[attr-defined]


class WorkQueue(EventQueue):
    """Queued sessions: acked once the claim was decided (won or lost, milliseconds)."""

    durable = subjects.WORK_CONSUMER
    subject = subjects.QUEUED_SESSIONS
    ack_wait = 5.0
    max_ack_pending = 10_000


class WorkerRegistry:
    """Live workers and their free slots: a KV bucket in memory (it holds only what the
    workers announce every heartbeat). A nats-server restart loses such a bucket, so
    whoever finds it gone creates it again; the workers' next announcements fill it."""

    def __init__(self, log: EventLog, kv: KeyValue, replicas: int) -> None:
        self._log = log
        self._kv = kv
        self._replicas = replicas

    @classmethod
    async def open(cls, log: EventLog, replicas: int | None = None) -> WorkerRegistry:
        replicas = replicas or subjects.replicas()
        return cls(log, await _bucket(log, replicas), replicas)

    async def _recreate(self) -> None:
        self._kv = await _bucket(self._log, self._replicas)

    async def announce(self, info: WorkerInfo) -> None:
        try:
            await self._kv.put(info.worker_id, _info_encoder.encode(info))
        except (NoStreamResponseError, NoRespondersError, NotFoundError):
            # The bucket is gone (a restart): nobody listens on its subjects any more.
            await self._recreate()
            await self._kv.put(info.worker_id, _info_encoder.encode(info))

    async def leave(self, worker_id: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(worker_id)

    async def snapshot(self) -> dict[str, tuple[int, WorkerInfo]]:
        """Every registered worker: id → (revision, info). Raises ``LogUnavailable`` when
        the registry cannot be read: an empty answer would read as "every worker gone".
        A bucket that is gone is created again, and reads as unreadable this once."""
        found: dict[str, tuple[int, WorkerInfo]] = {}
        try:
            keys = await self._kv.keys()
        except NoKeysError:  # an empty bucket
            return found
        except NotFoundError as exc:
            with contextlib.suppress(Exception):
                await self._recreate()
            raise LogUnavailable("worker registry recreated") from exc
        except Exception as exc:  # not "no workers": the caller must not act on it
            raise LogUnavailable(type(exc).__name__) from exc
        for key in keys:
            with contextlib.suppress(KeyNotFoundError):
                entry = await self._kv.get(key)
                if entry.value:
                    found[key] = (int(entry.revision or 0), _info_decoder.decode(entry.value))
        return found

    async def watch(self, handler: Handler, check_seconds: float = 0.5,
                    quiet_seconds: float = 7.5) -> RegistryWatch:
        """Call ``handler(worker_id, info or None)`` on every change, starting with the
        current entries, for as long as the watch runs (through server restarts and the
        loss of a cluster node). ``quiet_seconds``: a silence after which the watch is
        started again (workers announce every heartbeat; pass more than one)."""
        watch = RegistryWatch(self, handler, check_seconds, quiet_seconds)
        watch.start()
        return watch


Handler = Callable[[str, WorkerInfo | None], Awaitable[None]]


class RegistryWatch:
    """A watch on the registry that comes back after the bucket is lost.

    nats-py's KV watch is an ordered consumer; after a server restart the in-memory
    bucket and the consumer are gone, and the client's own recovery does not bring it
    back in time: it notices the consumer is gone only after two missed idle heartbeats
    (10 s), then re-creates it *from the last stream sequence it saw + 1*. The bucket,
    created again by whoever found it gone, numbers its entries from 1 again, so the new
    consumer skips every announcement until the new bucket's sequence passes the old
    one: workers stay unseen for as many announcements as the old bucket held (the
    2–40 s of ``workers: outage``), and a re-creation attempted before anyone re-created
    the bucket fails once, reported to the error callback only, until the next check.

    So this watch checks its consumer every ``check_seconds``; once the consumer or the
    bucket is gone it re-creates the bucket if need be and starts a new watch from the
    latest entry of every key (the workers re-announce at once when an announcement
    fails: ``worker.runtime``).

    In a cluster the bucket survives a node's death, but the watch's consumer (one
    replica, on some node) may not: asked about it, the cluster answers nothing useful
    while it elects, and the consumer may stall without being reported gone (seen: the
    API counting no worker for ~25 s after the node came back). So a watch that has
    delivered nothing for ``quiet_seconds`` is started again as well. A new watch
    delivers every key's latest entry again; an entry already delivered (same revision,
    same bytes) is not passed on twice, so a dead worker's last announcement does not
    read as a new one.
    """

    def __init__(self, registry: WorkerRegistry, handler: Handler, check_seconds: float,
                 quiet_seconds: float) -> None:
        self._registry = registry
        self._handler = handler
        self._check = check_seconds
        self._quiet = quiet_seconds
        self._task: asyncio.Task[None] | None = None
        self._delivered: dict[str, tuple[int, bytes]] = {}
        self._heard = 0.0  # loop time of the last entry the watch delivered
        self.restarts = 0  # watches started again after a loss or a silence

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                watcher = await self._registry._kv.watchall()
            except Exception:  # the bucket is gone, or the server not answering yet
                with contextlib.suppress(Exception):
                    await self._registry._recreate()
                await asyncio.sleep(self._check)
                continue
            pump = asyncio.create_task(self._pump(watcher))
            try:
                await self._until_lost(watcher)
            finally:
                pump.cancel()
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
            self.restarts += 1

    async def _pump(self, watcher: object) -> None:
        loop = asyncio.get_running_loop()
        async for entry in _entries(watcher):
            if entry is None:
                continue
            self._heard = loop.time()
            seen = (int(entry.revision or 0), entry.value or b"")
            if self._delivered.get(entry.key) == seen:
                continue  # the same announcement, delivered again by a new watch
            self._delivered[entry.key] = seen
            info = _info_decoder.decode(entry.value) if entry.value else None
            await self._handler(entry.key, info)

    async def _until_lost(self, watcher: object) -> None:
        """Return once the watch's consumer (or its bucket) no longer exists, once the
        bucket answers but the consumer does not (its node is gone), once it holds
        entries it does not deliver, or once it has delivered nothing for
        ``quiet_seconds``. A server that does not answer says nothing either way."""
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        sub = watcher._sub  # type: ignore[attr-defined]
        stuck_at: int | None = None
        while True:
            await asyncio.sleep(self._check)
            if loop.time() - self._heard > self._quiet:
                return
            try:
                info = await sub.consumer_info()
            except NotFoundError:
                return
            except Exception:
                if await self._bucket_answers():
                    return
                continue
            # Pending entries at the same delivered sequence on two checks: stalled.
            delivered = info.delivered.stream_seq if info.delivered else 0
            pending = bool(info.num_pending)
            if pending and stuck_at == delivered:
                return
            stuck_at = delivered if pending else None

    async def _bucket_answers(self) -> bool:
        try:
            await self._registry._kv.status()
        except Exception:
            return False
        return True


async def _bucket(log: EventLog, replicas: int) -> KeyValue:
    try:
        return await log.js.key_value(subjects.WORKERS_BUCKET)
    except BucketNotFoundError:
        return await log.js.create_key_value(KeyValueConfig(
            bucket=subjects.WORKERS_BUCKET, history=1, storage=StorageType.MEMORY,
            replicas=replicas, ttl=3600,
        ))


async def _entries(watcher: object) -> AsyncIterator[KeyValue.Entry | None]:
    while True:
        try:
            entry: KeyValue.Entry | None = await watcher.updates(timeout=3600)  # type: ignore[attr-defined]
        except (TimeoutError, NatsTimeout):
            continue
        yield entry


async def session_signals(
    log: EventLog, session_id: str, handler: Callable[[Event], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """Hear a session's new events as they are stored (core NATS, no replay)."""

    async def on_msg(msg: Msg) -> None:
        await handler(decode(msg.data))

    sub = await log.nc.subscribe(subjects.session_events_live(session_id), cb=on_msg)

    async def stop() -> None:
        await sub.unsubscribe()

    return stop
