"""``/v1/webhook_endpoints``: register, list and delete webhook endpoints (an extension
beyond the OpenAPI document, documented in the README).

The ``whsec_`` secret is generated here, shown once in the create response, and
reaches the log only sealed (AES-GCM, bound to the endpoint id).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Literal

import msgspec

from protoface.api.errors import invalid, not_found
from protoface.domain import ids, webhook
from protoface.domain.sealing import Keyring
from protoface.domain.webhook import Endpoint
from protoface.projections.runner import Projector
from protoface.projections.webhooks.endpoints import WebhookEndpointsModel
from protoface.projections.webhooks.urls import UrlRefused, check_url_syntax
from protoface.streams.eventlog import EventLog
from protoface.streams.transact import Stream, create, current_version, transact

ENDPOINT = "we"


class EndpointCreateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    event_types: list[str] | None = None


class EndpointView(msgspec.Struct, kw_only=True):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    event_types: list[str]
    status: str
    disabled_reason: str | None
    created_at: datetime


class EndpointCreatedView(EndpointView, kw_only=True):
    secret: str  # shown once


class EndpointList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[EndpointView]
    has_more: bool = False


def view(endpoint: Endpoint) -> EndpointView:
    return EndpointView(
        id=endpoint.id, url=endpoint.url, event_types=list(endpoint.event_types),
        status=endpoint.status, disabled_reason=endpoint.disabled_reason,
        created_at=endpoint.created_at,
    )


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookService:
    def __init__(self, log: EventLog, follower: Projector, model: WebhookEndpointsModel,
                 keyring: Keyring, *, production: bool, allow_private: bool) -> None:
        self.log = log
        self.follower = follower
        self.model = model
        self.keyring = keyring
        self.production = production
        self.allow_private = allow_private

    async def create(self, org_id: str, request: EndpointCreateRequest,
                     now: datetime) -> EndpointCreatedView:
        if len(request.url) > 2048:
            raise invalid("invalid_value", "url is too long.", "url")
        try:
            check_url_syntax(request.url, production=self.production,
                             allow_private=self.allow_private)
        except UrlRefused as refused:
            raise invalid("invalid_value", str(refused), "url") from None
        types = tuple(dict.fromkeys(request.event_types or ()))
        endpoint_id = ids.new_id(ENDPOINT)
        secret = new_secret()
        events = webhook.decide(webhook.CreateEndpoint(
            org_id=org_id, endpoint_id=endpoint_id, url=request.url,
            secret_sealed=self.keyring.seal(secret, endpoint_id), event_types=types, now=now,
        ), None, ids.new_event_id)
        seq = await create(self.log, Stream.webhook_endpoint(endpoint_id), events)
        await self.follower.wait_for(seq)
        created = view(self.model.endpoints[endpoint_id])
        return EndpointCreatedView(**msgspec.structs.asdict(created), secret=secret)

    def list(self, org_id: str) -> EndpointList:
        return EndpointList(data=[view(e) for e in self.model.of_org(org_id)])

    async def delete(self, org_id: str, endpoint_id: str, now: datetime) -> None:
        stream = Stream.webhook_endpoint(endpoint_id)

        async def load() -> tuple[Endpoint, int]:
            state = self.model.get(org_id, endpoint_id)
            if state is None:
                raise not_found("webhook_endpoint", endpoint_id)
            # The model keeps no version (attempts are appended to the same history).
            return state, await current_version(self.log, stream)

        command = webhook.DeleteEndpoint(org_id=org_id, endpoint_id=endpoint_id, now=now)
        done = await transact(self.log, stream, load,
                              lambda state: webhook.decide(command, state, ids.new_event_id),
                              self.follower.wait_for)
        await self.follower.wait_for(done.version)
