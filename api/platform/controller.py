"""Unauthenticated platform endpoints: plans, status, the OpenAPI document, metrics."""

from __future__ import annotations

from importlib import resources

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from protoface.api.http import json_response, now
from protoface.api.platform.schemas import Health, StatusComponent, StatusResponse, plan_view
from protoface.api.services import Services
from protoface.domain.plans import PUBLIC_PLANS

# Projection lag beyond which reads are called degraded.
DEGRADED_LAG_EVENTS = 10_000


class PlatformController(Controller):
    @get("/v1/billing/plans")
    async def plans(self) -> Response[bytes]:
        return json_response([plan_view(p) for p in PUBLIC_PLANS])

    @get("/v1/status")
    async def status(self, services: NamedDependency[Services]) -> Response[bytes]:
        components = [StatusComponent("api", "operational")]
        log_ok = await services.log.healthy()
        components.append(StatusComponent("event_log", "operational" if log_ok else "outage"))
        lag = (await services.log.last_seq() - services.projector.last_seq) if log_ok else 0
        components.append(StatusComponent(
            "projections", "operational" if lag < DEGRADED_LAG_EVENTS else "degraded"))
        components.append(StatusComponent("workers", _workers_status(services)))
        # The log down is an outage of everything; anything else degrades the platform.
        worst = "operational"
        for c in components:
            if c.status == "outage" and c.name == "event_log":
                worst = "outage"
            elif c.status != "operational" and worst == "operational":
                worst = "degraded"
        return json_response(StatusResponse(worst, components, now()))  # type: ignore[arg-type]

    @get("/schema/openapi.json")
    async def openapi(self) -> Response[bytes]:
        document = resources.files("protoface.api").joinpath("openapi.json").read_bytes()
        return Response(content=document, media_type="application/json")

    @get("/metrics")
    async def metrics(self) -> Response[bytes]:
        return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _workers_status(services: Services) -> Health:
    if services.capacity.policy == "queue" and services.capacity.live_workers() == 0:
        return "degraded"  # sessions are accepted and wait for a worker
    if services.capacity.live_workers() == 0:
        return "outage"
    return "operational" if services.capacity.has_room() else "degraded"
