"""Webhooks: the endpoints read model, and the dispatcher that delivers lifecycle events.

:class:`WebhookEndpointsModel` folds ``webhook.*`` events with the domain's own
``webhook.evolve`` (the API lists endpoints from it; the dispatcher reads them).

:class:`Dispatcher` follows the whole log. Each public lifecycle event (see
``domain.webhook.SESSION_TYPES``) is published once on core NATS
(``webhooks.<org>.<type>``) and becomes one delivery per enabled endpoint of its org
that wants the type, POSTed with a Standard Webhooks signature. Every attempt is
appended as ``webhook.delivery_attempted``; that is also the dispatcher's durable
position: on start it folds the log first and resumes exactly the deliveries not yet
settled (delivered, given up, gone), at their recorded next attempt. Deliveries run in
one lane per (endpoint, session), so a session's events reach an endpoint in order.
Run as many as you like: :func:`dispatch_while_holding` lets only the holder of the
dispatcher lease deliver; a standby takes over (folding the log, so resuming exactly
the unsettled deliveries) within the lease's length when the holder stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec
from standardwebhooks import Webhook

from domain import avatar, ids, session, webhook
from domain.avatar import Avatar, AvatarEvent
from domain.events import Event
from domain.sealing import Keyring
from domain.session import Session, SessionEvent
from domain.webhook import Delivery, DeliveryAttempted, Endpoint, WebhookEvent
from projections.runner import Projector
from projections.webhook_urls import Resolver, UrlRefused, resolve_target, system_resolver
from streams import subjects
from streams.eventlog import EventLog, LogUnavailable
from streams.lease import Lease

log = logging.getLogger("protoface.webhooks")
_encoder = msgspec.json.Encoder()


# ── The read model ──────────────────────────────────────────────────────────────


@dataclass
class WebhookEndpointsModel:
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    by_org: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if not isinstance(event, WebhookEvent):
            return
        before = self.endpoints.get(event.endpoint_id)
        after = webhook.evolve(before, event)
        if after is None:
            return
        self.endpoints[after.id] = after
        self.versions[after.id] = seq
        if before is None:
            self.by_org.setdefault(after.org_id, []).append(after.id)

    def get(self, org_id: str, endpoint_id: str) -> Endpoint | None:
        found = self.endpoints.get(endpoint_id)
        if found is None or found.org_id != org_id or found.status == "deleted":
            return None
        return found

    def of_org(self, org_id: str) -> list[Endpoint]:
        """The org's endpoints (not deleted), oldest first."""
        return [e for i in self.by_org.get(org_id, []) if (e := self.endpoints[i]).status
                != "deleted"]

    def export(self) -> dict[str, object]:
        return {
            "endpoints": dict(sorted(self.endpoints.items())),
            "versions": dict(sorted(self.versions.items())),
            "last_seq": self.last_seq,
        }


# ── SSRF guard ──────────────────────────────────────────────────────────────────


# ── The dispatcher ──────────────────────────────────────────────────────────────


@dataclass
class Job:
    endpoint_id: str
    delivery: Delivery
    body: bytes
    attempt: int = 1  # the next attempt's number
    not_before: datetime | None = None


@dataclass(frozen=True)
class DispatchSettings:
    production: bool = False
    allow_private: bool = False
    schedule: tuple[float, ...] = webhook.DEFAULT_SCHEDULE
    scale: float = 1.0
    disable_after: int = webhook.DISABLE_AFTER_FAILURES
    timeout: float = 10.0
    resolve: Resolver = system_resolver


Render = Callable[[Session], Any]
RenderAvatar = Callable[[Avatar], Any]


def lifecycle_body(event_type: str, at: datetime, data: Any) -> bytes:
    """``{type, timestamp, data}``: what is POSTed and published."""
    return _encoder.encode({"type": event_type, "timestamp": at, "data": data})


class Dispatcher:
    """Delivers webhooks. ``render`` turns a session into its public resource,
    ``render_avatar`` an avatar (without it, ``avatar.*`` webhooks are not sent)."""

    def __init__(
        self, event_log: EventLog, keyring: Keyring, render: Render,
        settings: DispatchSettings | None = None, *, render_avatar: RenderAvatar | None = None,
    ) -> None:
        self.log = event_log
        self.keyring = keyring
        self.render = render
        self.render_avatar = render_avatar
        self.avatars: dict[str, Avatar] = {}  # only those still processing
        self.settings = settings or DispatchSettings()
        self.endpoints = WebhookEndpointsModel()
        self.sessions: dict[str, Session] = {}
        self.last_seq = 0
        self.projector = Projector(event_log, [self.endpoints, self], metrics=False)
        self._live = False
        self._pending: dict[tuple[str, str], Job] = {}  # while catching up
        self._lanes: dict[tuple[str, str], list[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
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
        self._live = True
        for job in self._pending.values():
            self._enqueue(job)
        self._pending.clear()

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._attempts:  # started attempts finish: POSTed *and* recorded
            await asyncio.wait(set(self._attempts), timeout=self.settings.timeout + 10)
        await self.projector.stop()
        if self._http is not None:
            await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ── Following the log (called by the projector, in order) ───────────────────

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        if isinstance(event, SessionEvent):
            self._on_session_event(event)
        elif isinstance(event, AvatarEvent):
            self._on_avatar_event(event)
        elif isinstance(event, DeliveryAttempted) and not self._live:
            key = (event.endpoint_id, event.webhook_id)
            job = self._pending.get(key)
            if job is not None:
                if event.outcome == "retrying":
                    job.attempt = event.attempt + 1
                    job.not_before = event.next_attempt_at
                else:
                    del self._pending[key]

    def _on_session_event(self, event: session.Event) -> None:
        after = session.evolve(self.sessions.get(event.session_id), event)
        if after is None:
            return
        if after.terminal:  # nothing changes it any more: keep memory bounded
            self.sessions.pop(event.session_id, None)
        else:
            self.sessions[event.session_id] = after
        public = webhook.SESSION_TYPES.get(_type_of(event))
        if public is None:
            return
        self._emit(event.org_id, public, event.at, self.render(after), event.id,
                   session_id=event.session_id)

    def _on_avatar_event(self, event: avatar.Event) -> None:
        after = avatar.evolve(self.avatars.get(event.avatar_id), event)
        if after is None:
            return
        if after.status == "processing":
            self.avatars[after.id] = after
        else:  # built, failed or deleted: nothing more to announce, keep memory bounded
            self.avatars.pop(after.id, None)
        public = webhook.AVATAR_TYPES.get(_type_of(event))
        if public is None or self.render_avatar is None or after.status == "deleted":
            return
        self._emit(event.org_id, public, event.at, self.render_avatar(after), event.id)

    def _emit(
        self, org_id: str, public: str, at: datetime, data: Any, source_event_id: str,
        session_id: str | None = None,
    ) -> None:
        """Publish one public lifecycle event and deliver it to the org's endpoints."""
        body = lifecycle_body(public, at, data)
        if self._live:
            task = asyncio.ensure_future(
                self.log.notify(subjects.webhook_published(org_id, public), body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        delivery = Delivery(webhook_id=webhook.webhook_id(source_event_id), event_type=public,
                            session_id=session_id, source_event_id=source_event_id)
        for endpoint in self.endpoints.of_org(org_id):
            if endpoint.wants(public):
                job = Job(endpoint.id, delivery, body)
                if self._live:
                    self._enqueue(job)
                else:
                    self._pending[(endpoint.id, delivery.webhook_id)] = job

    # ── Delivering ──────────────────────────────────────────────────────────────

    def _enqueue(self, job: Job) -> None:
        lane = (job.endpoint_id, job.delivery.session_id or job.delivery.webhook_id)
        queue = self._lanes.get(lane)
        if queue is not None:
            queue.append(job)
            return
        self._lanes[lane] = [job]
        task = asyncio.create_task(self._run_lane(lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_lane(self, lane: tuple[str, str]) -> None:
        queue = self._lanes[lane]
        try:
            while queue:
                try:
                    await self._deliver(queue[0])
                except Exception:
                    log.exception("webhook delivery failed", extra={
                        "endpoint_id": lane[0], "webhook_id": queue[0].delivery.webhook_id})
                queue.pop(0)
        finally:
            self._lanes.pop(lane, None)

    async def _deliver(self, job: Job) -> None:
        """Attempt until delivered, gone, given up, or the endpoint is disabled."""
        while True:
            if job.not_before is not None:
                wait = (job.not_before - datetime.now(UTC)).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            endpoint = self.endpoints.endpoints.get(job.endpoint_id)
            if endpoint is None or endpoint.status != "enabled":
                return
            # A started attempt runs to its recorded end even if the dispatcher stops
            # meanwhile: a POST whose outcome never reached the log would be sent again
            # by whichever dispatcher holds the lease next.
            attempt = asyncio.ensure_future(self._attempt(endpoint, job))
            self._attempts.add(attempt)
            attempt.add_done_callback(self._attempts.discard)
            attempted = await asyncio.shield(attempt)
            if attempted.outcome != "retrying":
                return
            job.attempt += 1
            job.not_before = attempted.next_attempt_at

    async def _attempt(self, endpoint: Endpoint, job: Job) -> DeliveryAttempted:
        """One POST and its outcome appended to the log."""
        status, error, retry_after = await self._post(endpoint, job)
        events = webhook.after_attempt(
            endpoint, job.delivery, job.attempt, status, error, retry_after, datetime.now(UTC),
            ids.new_event_id, schedule=self.settings.schedule,
            scale=self.settings.scale, jitter=random.uniform(-0.1, 0.1),
            disable_after=self.settings.disable_after,
        )
        seq = await self._append(events)
        if seq and not self._stopping:
            with contextlib.suppress(TimeoutError, LogUnavailable):
                await self.projector.wait_for(seq, timeout=10.0)
        attempted = events[0]
        assert isinstance(attempted, DeliveryAttempted)
        log.info("webhook attempt", extra={
            "endpoint_id": endpoint.id, "webhook_id": job.delivery.webhook_id,
            "attempt": job.attempt, "status": status, "outcome": attempted.outcome})
        return attempted

    async def _append(self, events: list[webhook.Event]) -> int:
        for delay in (0.0, 0.5, 1.0, 2.0, 5.0):
            await asyncio.sleep(delay)
            try:
                return await self.log.append(list(events))
            except LogUnavailable:
                continue
        log.error("could not record a webhook attempt")
        return 0

    async def _post(self, endpoint: Endpoint, job: Job) -> tuple[int | None, str | None,
                                                                  float | None]:
        try:
            target = await resolve_target(
                endpoint.url, production=self.settings.production,
                allow_private=self.settings.allow_private, resolve=self.settings.resolve)
        except UrlRefused as refused:
            return None, str(refused), None
        secret = self.keyring.open(endpoint.secret_sealed, endpoint.id)
        now = datetime.now(UTC)
        payload = job.body.decode()
        headers = {
            "host": target.host,
            "content-type": "application/json",
            "user-agent": "Protoface-Webhooks/1",
            "webhook-id": job.delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(job.delivery.webhook_id, now, payload),
        }
        assert self._http is not None
        try:
            # To the address that was checked, never a second lookup (DNS rebinding).
            response = await self._http.post(
                target.url, content=job.body, headers=headers,
                extensions={"sni_hostname": target.server_name})
        except httpx.HTTPError as exc:
            return None, type(exc).__name__, None
        return response.status_code, None, _retry_after(response.headers.get("retry-after"))


def _type_of(event: Event) -> str:
    event_type = type(event).__struct_config__.tag
    assert isinstance(event_type, str)
    return event_type


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

    Each term starts a fresh :class:`Dispatcher`, which folds the log and resumes
    the unsettled deliveries where the previous holder left them.
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
