"""The Litestar application: routes, injected collaborators, and the error envelope."""

from __future__ import annotations

from litestar import Litestar, Request
from litestar.di import NamedDependency, Provide
from litestar.types import ASGIApp

from protoface.api import auth, metrics
from protoface.api.avatars.controller import AvatarsController
from protoface.api.errors import HANDLERS
from protoface.api.platform.controller import PlatformController
from protoface.api.platform.dashboard import OpsController
from protoface.api.platform.pages import WebController, static_files
from protoface.api.requestid import request_id_middleware
from protoface.api.services import Services
from protoface.api.sessions.controller import SessionsController
from protoface.api.sessions.pipecat import PipecatController
from protoface.api.usage.controller import UsageController
from protoface.api.webhooks.controller import WebhookEndpointsController
from protoface.projections.orgs import Principal

# What handlers of an authenticated caller name: resolved once the caller is known.
CALLERS = ("sessions", "avatars", "webhooks", "usage", "keyring", "creating")
# What the other handlers name (the relay checks its own media token, the dashboard
# the operator key).
OPEN = ("settings", "relay", "status_probe", "ops")


def create_app(services: Services) -> ASGIApp:
    """The ASGI app: Litestar inside the request-id middleware, so even a request
    that matches no route gets an ``X-Request-Id`` and an envelope that carries it
    (the same middleware keeps the access log and the request timings)."""
    metrics.watch(services.sessions_model, services.capacity)
    return request_id_middleware(_litestar(services))


def _litestar(services: Services) -> Litestar:
    return Litestar(
        route_handlers=[SessionsController, PipecatController, PlatformController,
                        UsageController, WebhookEndpointsController, AvatarsController,
                        OpsController, WebController, static_files()],
        dependencies=_dependencies(services),
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        logging_config=None,
        openapi_config=None,
        request_max_body_size=services.settings.max_body_bytes,
        debug=False,
    )


def _dependencies(services: Services) -> dict[str, Provide]:
    """Each handler names the collaborators it needs; none gets the composition."""

    async def provide_principal(request: Request) -> Principal:  # type: ignore[type-arg]
        return await auth.authenticate(request, services.orgs, services.projector)

    return {
        "principal": Provide(provide_principal),
        **{name: _after_caller(services, name) for name in CALLERS},
        **{name: _held(services, name) for name in OPEN},
    }


def _held(services: Services, name: str) -> Provide:
    """``services.<name>``, read per request (a test may swap it on the running app)."""

    async def provide() -> object:
        return getattr(services, name)

    return Provide(provide)


def _after_caller(services: Services, name: str) -> Provide:
    """``services.<name>``, resolved after ``principal``: nothing is handed out for a
    caller who fails authentication, and Litestar resolves dependencies of one level
    concurrently in an anyio task group (a measurable share of a short request), so a
    handler that names the caller and one collaborator resolves the two in turn."""

    async def provide(principal: NamedDependency[Principal]) -> object:
        return getattr(services, name)

    return Provide(provide)
