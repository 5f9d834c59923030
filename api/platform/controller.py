"""Unauthenticated platform endpoints: plans, status, the OpenAPI document, metrics."""

from __future__ import annotations

from importlib import resources

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from protoface.api.http import json_response, now
from protoface.api.platform.schemas import plan_view
from protoface.api.platform.status import StatusProbe
from protoface.domain.plans import PUBLIC_PLANS


class PlatformController(Controller):
    @get("/v1/billing/plans")
    async def plans(self) -> Response[bytes]:
        return json_response([plan_view(p) for p in PUBLIC_PLANS])

    @get("/v1/status")
    async def status(self, status_probe: NamedDependency[StatusProbe]) -> Response[bytes]:
        return json_response(await status_probe.report(now()))

    @get("/schema/openapi.json")
    async def openapi(self) -> Response[bytes]:
        document = resources.files("protoface.api").joinpath("openapi.json").read_bytes()
        return Response(content=document, media_type="application/json")

    @get("/metrics")
    async def metrics(self) -> Response[bytes]:
        return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)

