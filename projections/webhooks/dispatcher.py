"""The webhook dispatcher: a process manager that POSTs lifecycle events and appends
every attempt as ``webhook.delivery_attempted``.

:class:`Dispatcher` is driven by the durable pull consumer
(:class:`streams.webhooks.WebhookQueue`) on the public lifecycle events only (see
``domain.webhook.SESSION_TYPES`` / ``AVATAR_TYPES``). For each message it renders the
public resource as of that event (:mod:`.sources`), publishes the body once on core NATS
(``webhooks.<org>.<type>``, on the consumer's first delivery of it) and POSTs it, signed
per Standard Webhooks, to every endpoint of the org that wants it: enabled, subscribed to
the type, and created *before* the event in the log.

What has been attempted is read from the :class:`~.ledger.DeliveryLedger`, never from
memory. A message is acked once every wanting endpoint has settled (delivered, gone,
given up); otherwise it is handed back to the consumer with a delay until the earliest
next attempt, and JetStream delivers it again then. So retries ride the consumer: no
in-memory timers, and a restart resumes every unsettled delivery at its recorded time
(its message comes back when its delay or ``ack_wait`` is over). A session's events
reach an endpoint in order: a message waits while an earlier lifecycle event of the
same session that the endpoint wants has not settled (read from the ledger, so it holds
across restarts and processes).

One active dispatcher: :func:`dispatch_while_holding` lets only the holder of the
dispatcher lease fetch from the consumer; a standby takes over within the lease's
length, and its start-up is only the ``webhook.*`` fold. (The ordering check reads the
log, so two active dispatchers would still deliver in order; the lease is kept so a
receiver sees one sender and attempt numbers stay consecutive.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks import Webhook

from protoface.domain import ids, webhook
from protoface.domain.sealing import Keyring
from protoface.domain.webhook import DeliveryAttempted, Endpoint
from protoface.projections.runner import Projector
from protoface.projections.webhooks.ledger import DEFAULT_HORIZON, DeliveryLedger
from protoface.projections.webhooks.sources import Render, RenderAvatar, Source, Sources
from protoface.projections.webhooks.urls import (
    Resolver,
    UrlRefused,
    resolve_target,
    system_resolver,
)
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, LogUnavailable
from protoface.streams.lease import Lease
from protoface.streams.transact import Stream, current_version, transact
from protoface.streams.webhooks import Job, WebhookQueue

log = logging.getLogger("protoface.webhooks")


# A message waiting for an earlier event of its session that nobody has attempted yet
# (it is in another handler, or in a dead dispatcher's hands until ack_wait) looks
# again after this many seconds per delivery so far, at most MAX_BLOCKED_WAIT.
FETCH_SECONDS = 1.0  # the longest a fetch waits for a message (and a stop for the pump)
BLOCKED_RECHECK = 0.2
MAX_BLOCKED_WAIT = 5.0
ERROR_DELAY = 5.0  # a message whose handling failed (log unreachable, …) comes back after


@dataclass(frozen=True)
class DispatchSettings:
    production: bool = False
    allow_private: bool = False
    schedule: tuple[float, ...] = webhook.DEFAULT_SCHEDULE
    scale: float = 1.0
    disable_after: int = webhook.DISABLE_AFTER_FAILURES
    timeout: float = 10.0
    resolve: Resolver = system_resolver
    horizon: float = DEFAULT_HORIZON  # seconds; older source events are not delivered
    concurrency: int = 64  # messages in hand at once


class Dispatcher:
    """Delivers webhooks. ``render`` turns a session into its public resource,
    ``render_avatar`` an avatar (without it, ``avatar.*`` webhooks are not sent)."""

    def __init__(
        self, event_log: EventLog, keyring: Keyring, render: Render,
        settings: DispatchSettings | None = None, *, render_avatar: RenderAvatar | None = None,
    ) -> None:
        self.log = event_log
        self.keyring = keyring
        self.sources = Sources(event_log, render, render_avatar)
        self.settings = settings or DispatchSettings()
        self.ledger = DeliveryLedger(horizon=timedelta(seconds=self.settings.horizon))
        self.endpoints = self.ledger.endpoints
        self.projector = Projector(
            event_log, [self.ledger], subject=subjects.WEBHOOK_EVENTS, metrics=False)
        self.queue: WebhookQueue | None = None
        self._pump: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self._attempts: set[asyncio.Future[DeliveryAttempted]] = set()
        self._stopping = False
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        # No pooled connections: the pool is keyed by address, and a TLS connection
        # opened for one name must never carry a request for another name at that address.
        self._http = httpx.AsyncClient(
            timeout=self.settings.timeout, follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0))
        await self.projector.start()
        await self.projector.catch_up()
        since = datetime.now(UTC) - timedelta(seconds=self.settings.horizon)
        self.queue = await WebhookQueue.open_since(self.log, since)
        self._pump = asyncio.create_task(self._fetch())

    async def stop(self) -> None:
        self._stopping = True  # handlers start no new attempt and hand their message back
        if self._pump is not None:
            # Asked, not cancelled: the pump ends within one fetch timeout. A cancel can be
            # lost inside nats-py's fetch (asyncio.wait_for on Python 3.11 swallows one that
            # lands as its timeout fires), and the pump would then fetch forever.
            await self._pump
        if self._attempts:  # started attempts finish: POSTed *and* recorded
            await asyncio.wait(set(self._attempts), timeout=self.settings.timeout + 10)
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)
        await self.projector.stop()
        if self.queue is not None:
            await self.queue.close()
        if self._http is not None:
            await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ── Taking messages from the consumer ───────────────────────────────────────

    async def _fetch(self) -> None:
        assert self.queue is not None
        while not self._stopping:
            free = self.settings.concurrency - len(self._handling)
            if free <= 0:
                await asyncio.wait(set(self._handling), timeout=FETCH_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                jobs = await self.queue.next_batch(free, timeout=FETCH_SECONDS)
            except Exception:  # reconnecting, or between leaders: the messages wait
                log.warning("webhook consumer unavailable", exc_info=True)
                await asyncio.sleep(FETCH_SECONDS)
                continue
            for job in jobs:
                task = asyncio.create_task(self._handle(job))
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    async def _handle(self, job: Job) -> None:
        """Ack the message once its deliveries settled, else hand it back until due."""
        try:
            async with self._working_on(job):
                wait = await self._settle(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # stopping: back at once, to the next holder
                await job.later(0)
            raise
        except Exception:
            log.exception("webhook delivery failed", extra={"seq": job.seq})
            wait = ERROR_DELAY
        try:
            if wait is None:
                await job.done()
            else:
                await job.later(wait)
        except Exception:  # not answered: it comes back after ack_wait
            log.warning("webhook message not answered", extra={"seq": job.seq}, exc_info=True)

    @contextlib.asynccontextmanager
    async def _working_on(self, job: Job) -> AsyncIterator[None]:
        """Keep the message ours while attempts run (it would return after ack_wait)."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(WebhookQueue.ack_wait / 4)
                with contextlib.suppress(Exception):
                    await job.working()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()

    async def _settle(self, job: Job) -> float | None:
        """Attempt what is due; None once every wanting endpoint has settled, else the
        seconds until the message is worth looking at again."""
        if self.ledger.expired(webhook.webhook_id(job.event.id), datetime.now(UTC)):
            return None
        source = await self.sources.of(job.event, job.seq)
        if source is None:
            return None
        if job.deliveries == 1:  # published once, as the consumer first hands it out
            await self.log.notify(
                subjects.webhook_published(source.org_id, source.delivery.event_type),
                source.body)
        while not self._stopping:
            await self.projector.catch_up(timeout=10.0)  # every attempt recorded so far
            due, waits = self._plan(source, job.deliveries, datetime.now(UTC))
            if not due:
                return min(waits, default=None)
            await asyncio.gather(*(self._attempt_shielded(endpoint, source, attempt)
                                   for endpoint, attempt in due))
        return 0.0

    def _plan(self, source: Source, deliveries: int,
              now: datetime) -> tuple[list[tuple[Endpoint, int]], list[float]]:
        """The (endpoint, attempt number) pairs due now, and the waits of the others."""
        due: list[tuple[Endpoint, int]] = []
        waits: list[float] = []
        for endpoint in self.ledger.wanting(source.org_id, source.delivery.event_type,
                                            source.seq):
            last = self.ledger.last_attempt(endpoint.id, source.delivery.webhook_id)
            if last is not None and last.outcome != "retrying":
                continue  # settled
            blocked = self._blocked(endpoint, source, deliveries, now)
            if blocked is not None:
                waits.append(blocked)
            elif last is not None and (wait := _until(last.next_attempt_at, now)) > 0:
                waits.append(wait)
            else:
                due.append((endpoint, last.attempt + 1 if last else 1))
        return due, waits

    def _blocked(self, endpoint: Endpoint, source: Source, deliveries: int,
                 now: datetime) -> float | None:
        """Seconds to wait for an earlier event of the session that ``endpoint`` wants and
        has not settled (None: nothing earlier is outstanding)."""
        for seq, event_type, webhook_id in source.earlier:
            if not self.ledger.wants(endpoint, event_type, seq) or self.ledger.expired(
                    webhook_id, now):
                continue
            last = self.ledger.last_attempt(endpoint.id, webhook_id)
            if last is None:
                return min(BLOCKED_RECHECK * deliveries, MAX_BLOCKED_WAIT)
            if last.outcome == "retrying":  # look again once its next attempt has run
                return _until(last.next_attempt_at, now) + BLOCKED_RECHECK
        return None

    # ── Delivering ──────────────────────────────────────────────────────────────

    async def _attempt_shielded(self, endpoint: Endpoint, source: Source, attempt: int) -> None:
        # A started attempt runs to its recorded end even if the dispatcher stops
        # meanwhile: a POST whose outcome never reached the log would be sent again
        # by whichever dispatcher gets the message next.
        task = asyncio.ensure_future(self._attempt(endpoint, source, attempt))
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)
        await asyncio.shield(task)

    async def _attempt(self, endpoint: Endpoint, source: Source, attempt: int) -> DeliveryAttempted:
        """One POST and its outcome appended to the log."""
        status, error, retry_after = await self._post(endpoint, source)
        events = webhook.after_attempt(
            endpoint, source.delivery, attempt, status, error, retry_after, datetime.now(UTC),
            ids.new_event_id, schedule=self.settings.schedule,
            scale=self.settings.scale, jitter=random.uniform(-0.1, 0.1),
            disable_after=self.settings.disable_after,
        )
        if not await self._append(endpoint, events):
            # Not recorded: the message comes back after ERROR_DELAY and this attempt is
            # made again, rather than at once in a loop while the log is unreachable.
            raise LogUnavailable("webhook attempt not recorded")
        attempted = events[0]
        assert isinstance(attempted, DeliveryAttempted)
        log.info("webhook attempt", extra={
            "endpoint_id": endpoint.id, "webhook_id": source.delivery.webhook_id,
            "attempt": attempt, "status": status, "outcome": attempted.outcome})
        return attempted

    async def _append(self, endpoint: Endpoint, events: list[webhook.Event]) -> int:
        """Record an attempt on the endpoint's history, conditionally on its latest
        version (this dispatcher is its only writer of attempts; a concurrent delete
        or disable is kept in order). Retried while the log is unreachable."""
        stream = Stream.webhook_endpoint(endpoint.id)

        async def load() -> tuple[None, int]:
            return None, await current_version(self.log, stream)

        for delay in (0.0, 0.5, 1.0, 2.0, 5.0):
            await asyncio.sleep(delay)
            try:
                return (await transact(self.log, stream, load, lambda _: events)).version
            except LogUnavailable:
                continue
        log.error("could not record a webhook attempt")
        return 0

    async def _post(self, endpoint: Endpoint, source: Source) -> tuple[int | None, str | None,
                                                                     float | None]:
        try:
            target = await resolve_target(
                endpoint.url, production=self.settings.production,
                allow_private=self.settings.allow_private, resolve=self.settings.resolve)
        except UrlRefused as refused:
            return None, str(refused), None
        secret = self.keyring.open(endpoint.secret_sealed, endpoint.id)
        now = datetime.now(UTC)
        webhook_id = source.delivery.webhook_id
        headers = {
            "host": target.host,
            "content-type": "application/json",
            "user-agent": "Protoface-Webhooks/1",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, now, source.body.decode()),
        }
        assert self._http is not None
        try:
            # To the address that was checked, never a second lookup (DNS rebinding).
            response = await self._http.post(
                target.url, content=source.body, headers=headers,
                extensions={"sni_hostname": target.server_name})
        except httpx.HTTPError as exc:
            return None, type(exc).__name__, None
        return response.status_code, None, _retry_after(response.headers.get("retry-after"))


def _until(when: datetime | None, now: datetime) -> float:
    return 0.0 if when is None else max(0.0, (when - now).total_seconds())




def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def dispatch_while_holding(
    lease: Lease, make: Callable[[], Dispatcher], stop: asyncio.Event,
) -> None:
    """Deliver while this process holds ``lease``; stand by while another does.

    Each term starts a fresh :class:`Dispatcher`: it folds only the ``webhook.*`` events
    and fetches from the shared consumer, whose unacked messages carry the unsettled
    deliveries where the previous holder left them.
    """
    while not stop.is_set():
        await lease.hold(stop)
        if stop.is_set():
            break
        log.info("webhook dispatcher active", extra={"holder": lease.holder})
        dispatcher = make()
        try:
            await dispatcher.start()
            await lease.keep(stop)
        finally:
            await dispatcher.stop()
            await lease.release()
        if not stop.is_set():
            log.warning("webhook dispatcher standing by", extra={"holder": lease.holder})
