"""The Litestar application: routes, injected collaborators, and the error envelope."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp

from protoface.api import metrics
from protoface.api.avatars.controller import AvatarsController
from protoface.api.dependencies import dependencies
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


def create_app(services: Services) -> ASGIApp:
    """The ASGI app: Litestar inside the request-id middleware, so even a request
    that matches no route gets an ``X-Request-Id`` and an envelope that carries it
    (the same middleware keeps the access log and the request timings)."""
    metrics.watch(services.sessions_model, services.capacity)
    return request_id_middleware(litestar_app(services))


def litestar_app(services: Services) -> Litestar:
    """The Litestar app alone (``create_app`` wraps it)."""
    return Litestar(
        route_handlers=[SessionsController, PipecatController, PlatformController,
                        UsageController, WebhookEndpointsController, AvatarsController,
                        OpsController, WebController, static_files()],
        dependencies=dependencies(services),
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        logging_config=None,
        openapi_config=None,
        request_max_body_size=services.settings.max_body_bytes,
        debug=False,
    )

