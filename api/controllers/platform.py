"""Unauthenticated platform endpoints: plans, status, the OpenAPI document, metrics."""

from __future__ import annotations

from importlib import resources

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.controllers.common import json_response, now
from api.schemas import StatusComponent, StatusResponse, plan_view
from api.services import Services
from domain.plans import PUBLIC_PLANS

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
        worst = "operational"
        for c in components:
            if c.status == "outage":
                worst = "outage" if c.name == "event_log" else "degraded"
            elif c.status == "degraded" and worst == "operational":
                worst = "degraded"
        return json_response(StatusResponse(worst, components, now()))  # type: ignore[arg-type]

    @get("/schema/openapi.json")
    async def openapi(self) -> Response[bytes]:
        document = resources.files("api").joinpath("openapi.json").read_bytes()
        return Response(content=document, media_type="application/json")

    @get("/metrics")
    async def metrics(self) -> Response[bytes]:
        return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)
