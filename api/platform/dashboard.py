"""``/ops/overview``: the operator dashboard's data (an extension beyond the OpenAPI
document). Read-only, every org, behind the operator key (api/operator.py)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from protoface.api.config import Settings
from protoface.api.http import json_response, now, query_int, query_statuses
from protoface.api.platform import operator
from protoface.api.platform.ops import OpsReader


class OpsController(Controller):
    path = "/ops"

    @get("/overview")
    async def overview(
        self, request: Request, settings: NamedDependency[Settings],  # type: ignore[type-arg]
        ops: NamedDependency[OpsReader],
    ) -> Response[bytes]:
        operator.check(request, settings)
        params = request.query_params
        view = ops.overview(
            statuses=query_statuses(params.getall("status", [])),
            limit=query_int(params.get("limit"), "limit", 50, 1, 500),
            days=query_int(params.get("days"), "days", 14, 1, 366), now=now(),
        )
        return json_response(view, headers={"Cache-Control": "no-store"})
