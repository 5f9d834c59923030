"""``/v1/webhook_endpoints``: create (the secret is shown once), list, delete."""

from __future__ import annotations

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from protoface.api import body
from protoface.api.http import json_response, now
from protoface.api.webhooks.service import EndpointCreateRequest, WebhookService
from protoface.projections.orgs import Principal

Webhooks = NamedDependency[WebhookService]
Caller = NamedDependency[Principal]


class WebhookEndpointsController(Controller):
    path = "/v1/webhook_endpoints"

    @post("/", status_code=201)
    async def create(
        self, request: Request, principal: Caller, webhooks: Webhooks  # type: ignore[type-arg]
    ) -> Response[bytes]:
        decoded = body.decode(await request.body(), EndpointCreateRequest)
        created = await webhooks.create(principal.org.id, decoded, now())
        return json_response(created, status=201)

    @get("/")
    async def list_endpoints(self, principal: Caller, webhooks: Webhooks) -> Response[bytes]:
        return json_response(webhooks.list(principal.org.id))

    @delete("/{endpoint_id:str}", status_code=204)
    async def delete_endpoint(
        self, endpoint_id: FromPath[str], principal: Caller, webhooks: Webhooks
    ) -> None:
        await webhooks.delete(principal.org.id, endpoint_id, now())
