"""What the app injects, by name: each handler names the collaborators it needs and
gets those alone (never the :class:`~api.services.Services` composition that holds them).

One dependency per level: Litestar resolves the dependencies of one level concurrently,
in an anyio task group, which costs more than the rest of a short request's
resolution together (docs/performance.md). So the providers form chains, each naming
the one before it (and needing nothing from it), along which every handler's
collaborators lie, and a handler's dependencies resolve one after another::

    principal → sessions → creating → keyring        POST /v1/sessions
                                    → media_links    POST /v1/pipecat/sessions
    principal → avatars | webhooks | usage           the other authenticated handlers
    settings → ops                                   the operator dashboard
    relay, status_probe                              the media socket, /v1/status

Whatever an authenticated handler names comes after ``principal``: nothing is handed
out for a caller who fails authentication. Every value is read from the composition
per request, so a test may swap one (the settings) on the running app.
"""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency, Provide

from protoface.api import auth
from protoface.api.avatars.service import AvatarService
from protoface.api.config import Settings
from protoface.api.platform.ops import OpsReader
from protoface.api.platform.status import StatusProbe
from protoface.api.services import Services
from protoface.api.sessions.creating import CreateGate
from protoface.api.sessions.relay import MediaLinks, Relay
from protoface.api.sessions.service import SessionService
from protoface.api.webhooks.service import WebhookService
from protoface.domain.sealing import Keyring
from protoface.projections.orgs import Principal
from protoface.projections.usage import UsageModel


def dependencies(services: Services) -> dict[str, Provide]:
    providers = _Providers(services)
    names = ("principal", "sessions", "creating", "keyring", "media_links", "avatars",
             "webhooks", "usage", "settings", "ops", "relay", "status_probe")
    return {name: Provide(getattr(providers, name)) for name in names}


class _Providers:
    """One method per injected name; its parameter is the link before it in its chain."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def principal(self, request: Request) -> Principal:  # type: ignore[type-arg]
        return await auth.authenticate(request, self.services.orgs, self.services.projector)

    async def sessions(self, principal: NamedDependency[Principal]) -> SessionService:
        return self.services.sessions

    async def creating(self, sessions: NamedDependency[SessionService]) -> CreateGate:
        return self.services.creating

    async def keyring(self, creating: NamedDependency[CreateGate]) -> Keyring:
        return self.services.keyring

    async def media_links(self, creating: NamedDependency[CreateGate]) -> MediaLinks:
        return self.services.media_links

    async def avatars(self, principal: NamedDependency[Principal]) -> AvatarService:
        return self.services.avatars

    async def webhooks(self, principal: NamedDependency[Principal]) -> WebhookService:
        return self.services.webhooks

    async def usage(self, principal: NamedDependency[Principal]) -> UsageModel:
        return self.services.usage

    async def settings(self) -> Settings:
        return self.services.settings

    async def ops(self, settings: NamedDependency[Settings]) -> OpsReader:
        return self.services.ops

    async def relay(self) -> Relay:
        return self.services.relay

    async def status_probe(self) -> StatusProbe:
        return self.services.status_probe
