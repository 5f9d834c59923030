"""The API process's composition: every collaborator, built once per process.

Handlers never receive this object: the app injects each one only the collaborators
it names (``sessions``, ``creating``, ``relay``, …), read from here (:mod:`api.dependencies`).
"""

from __future__ import annotations

import asyncio

from protoface.api.avatars.service import AvatarService
from protoface.api.capacity import Capacity
from protoface.api.config import Settings
from protoface.api.platform.ops import OpsReader
from protoface.api.platform.status import StatusProbe
from protoface.api.ratelimit import RateLimiter
from protoface.api.sessions.creating import CreateGate
from protoface.api.sessions.media_tokens import MediaTokens
from protoface.api.sessions.relay import MediaLinks, Relay
from protoface.api.sessions.service import SessionService
from protoface.api.webhooks.service import WebhookService
from protoface.domain.sealing import Keyring
from protoface.projections import snapshots
from protoface.projections.avatars import AvatarsModel
from protoface.projections.orgs import OrgsModel
from protoface.projections.runner import Projector
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.projections.webhooks.deliveries import RecentDeliveries
from protoface.projections.webhooks.endpoints import WebhookEndpointsModel
from protoface.streams import subjects
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog
from protoface.streams.idempotency import IdempotencyStore
from protoface.streams.rates import CreateRates
from protoface.streams.snapshots import SnapshotStore


class Services:
    """A plain class on purpose: Litestar would re-validate an injected dataclass per request."""

    def __init__(
        self, *, settings: Settings, log: EventLog, projector: Projector,
        sessions_model: SessionsModel, orgs: OrgsModel, sessions: SessionService,
        idempotency: IdempotencyStore, keyring: Keyring, capacity: Capacity,
        usage: UsageModel, background: list[asyncio.Task[None]] | None = None,
        avatars: AvatarService, webhooks: WebhookService | None = None,
        deliveries: RecentDeliveries | None = None, rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.background = background or []
        self.settings = settings
        self.log = log
        self.projector = projector
        self.sessions_model = sessions_model
        self.orgs = orgs
        self.usage = usage  # the usage ledger and credits
        self.sessions = sessions
        self.idempotency = idempotency
        self.keyring = keyring
        self.capacity = capacity
        # Settings are read at each use, so a test may swap them on the running process.
        self.creating = CreateGate(idempotency, rate_limiter or RateLimiter(),
                                   lambda: self.settings.create_rate_per_minute)
        tokens = MediaTokens(keyring)
        self.relay = Relay(log, tokens, sessions_model)
        self.media_links = MediaLinks(tokens, lambda: self.settings.public_url)
        self.status_probe = StatusProbe(log, projector, capacity)
        if webhooks is None:  # endpoints read model, folded from webhook.* events only
            model = WebhookEndpointsModel()
            webhooks = WebhookService(
                log, _webhook_projector(log, model), model, keyring,
                production=settings.production, allow_private=settings.webhook_allow_private)
        self.webhooks = webhooks
        # Recent webhook deliveries and their attempts (the operator dashboard).
        self.deliveries = deliveries or RecentDeliveries()
        self.avatars = avatars
        self.ops = OpsReader(sessions_model, usage, self.deliveries, capacity)

    @classmethod
    async def start(cls, settings: Settings, keyring: Keyring) -> Services:
        log = await EventLog.connect(settings.nats_url, name="protoface-api",
                                     replicas=settings.replicas)
        # Restore the read models from their last snapshot, then fold only the tail.
        snapshot_store = await SnapshotStore.open(log, settings.replicas)
        sessions_model = await snapshots.restore(snapshot_store, SessionsModel)
        orgs = await snapshots.restore(snapshot_store, OrgsModel)
        usage = await snapshots.restore(snapshot_store, UsageModel)
        avatars_model = await snapshots.restore(snapshot_store, AvatarsModel)
        projector = Projector(log, [sessions_model, orgs, usage, avatars_model])
        await projector.start()
        await projector.catch_up()
        models: list[snapshots.Snapshotted] = [sessions_model, orgs, usage, avatars_model]
        saver = asyncio.create_task(snapshots.save_periodically(
            snapshot_store, models, settings.snapshot_seconds))
        # An audit may come before the first periodic save: it asks, and we save now.
        # (The subscription ends with the log's connection, in ``stop``.)
        await snapshots.save_on_request(snapshot_store, models)
        avatars = AvatarService(log, projector, avatars_model,
                                await AvatarStore.open(log, settings.replicas))
        capacity = Capacity(settings.heartbeat_seconds, settings.when_at_capacity)
        await capacity.start(log)
        webhook_model, deliveries = WebhookEndpointsModel(), RecentDeliveries()
        webhook_follower = _webhook_projector(log, webhook_model, deliveries)
        await webhook_follower.start()
        await webhook_follower.catch_up()
        return cls(
            settings=settings, log=log, projector=projector, sessions_model=sessions_model,
            orgs=orgs, avatars=avatars,
            sessions=SessionService(log, projector, sessions_model, capacity, usage,
                                    avatars=avatars),
            idempotency=await IdempotencyStore.open(log.js, settings.replicas), keyring=keyring,
            capacity=capacity, usage=usage, background=[saver],
            webhooks=WebhookService(
                log, webhook_follower, webhook_model, keyring, production=settings.production,
                allow_private=settings.webhook_allow_private),
            deliveries=deliveries,
            rate_limiter=RateLimiter(await CreateRates.open(log.js, settings.replicas)),
        )

    async def stop(self) -> None:
        for task in self.background:
            task.cancel()
        await self.capacity.stop()
        await self.webhooks.follower.stop()
        await self.projector.stop()
        await self.log.close()


def _webhook_projector(
    log: EventLog, model: WebhookEndpointsModel, *others: RecentDeliveries
) -> Projector:
    """The endpoints read model (and recent deliveries) follow only ``webhook.*`` events."""
    return Projector(log, [model, *others], subject=subjects.WEBHOOK_EVENTS, metrics=False)
