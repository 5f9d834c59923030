"""Everything a request handler may need, built once per process and injected."""

from __future__ import annotations

from api.capacity import Capacity
from api.config import Settings
from api.media_tokens import MediaTokens
from api.ratelimit import RateLimiter
from api.sessions import SessionService
from domain.sealing import Keyring
from projections.orgs import OrgsModel
from projections.runner import Projector
from projections.sessions import SessionsModel
from streams.eventlog import EventLog
from streams.idempotency import IdempotencyStore


class Services:
    """A plain class on purpose: Litestar would re-validate an injected dataclass per request."""

    def __init__(
        self, *, settings: Settings, log: EventLog, projector: Projector,
        sessions_model: SessionsModel, orgs: OrgsModel, sessions: SessionService,
        idempotency: IdempotencyStore, keyring: Keyring, capacity: Capacity,
    ) -> None:
        self.settings = settings
        self.log = log
        self.projector = projector
        self.sessions_model = sessions_model
        self.orgs = orgs
        self.sessions = sessions
        self.idempotency = idempotency
        self.keyring = keyring
        self.capacity = capacity
        self.media_tokens = MediaTokens(keyring)
        self.rate_limiter = RateLimiter()

    @classmethod
    async def start(cls, settings: Settings, keyring: Keyring) -> Services:
        log = await EventLog.connect(settings.nats_url, name="protoface-api",
                                     replicas=settings.replicas)
        sessions_model, orgs = SessionsModel(), OrgsModel()
        projector = Projector(log, [sessions_model, orgs])
        await projector.start()
        await projector.catch_up()
        capacity = Capacity(settings.heartbeat_seconds, settings.when_at_capacity)
        await capacity.start(log)
        return cls(
            settings=settings, log=log, projector=projector, sessions_model=sessions_model,
            orgs=orgs, sessions=SessionService(log, projector, sessions_model, capacity),
            idempotency=await IdempotencyStore.open(log.js, settings.replicas), keyring=keyring,
            capacity=capacity,
        )

    async def stop(self) -> None:
        await self.capacity.stop()
        await self.projector.stop()
        await self.log.close()
