"""``/v1/webhook_endpoints``: create (the secret is shown once), list, delete."""

from __future__ import annotations

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from protoface.api import body
from protoface.api.http import json_response, now
from protoface.api.services import Services
from protoface.api.webhooks.service import EndpointCreateRequest
from protoface.projections.orgs import Principal

Svc = NamedDependency[Services]
Caller = NamedDependency[Principal]


class WebhookEndpointsController(Controller):
    path = "/v1/webhook_endpoints"

    @post("/", status_code=201)
    async def create(
        self, request: Request, services: Svc, principal: Caller  # type: ignore[type-arg]
    ) -> Response[bytes]:
        decoded = body.decode(await request.body(), EndpointCreateRequest)
        created = await services.webhooks.create(principal.org.id, decoded, now())
        return json_response(created, status=201)

    @get("/")
    async def list_endpoints(self, services: Svc, principal: Caller) -> Response[bytes]:
        return json_response(services.webhooks.list(principal.org.id))

    @delete("/{endpoint_id:str}", status_code=204)
    async def delete_endpoint(
        self, endpoint_id: FromPath[str], services: Svc, principal: Caller
    ) -> None:
        await services.webhooks.delete(principal.org.id, endpoint_id, now())
