"""``GET /v1/usage`` (aggregated usage) and ``GET /v1/billing/quota`` (credits left)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from protoface.api.http import check_query, json_response, now
from protoface.api.usage import service
from protoface.domain import billing
from protoface.projections.orgs import Principal
from protoface.projections.usage import UsageModel

Usage = NamedDependency[UsageModel]
Caller = NamedDependency[Principal]


USAGE_PARAMS = frozenset({"period", "period_start", "period_end"})


class UsageController(Controller):
    @get("/v1/usage")
    async def usage_summary(
        self, request: Request, principal: Caller, usage: Usage  # type: ignore[type-arg]
    ) -> Response[bytes]:
        check_query(request.query_params, USAGE_PARAMS)
        start, end = service.window(request.query_params, now())
        summary = usage.summary(principal.org.id, start, end)
        return json_response(service.summary_view(start, end, summary))

    @get("/v1/billing/quota")
    async def quota(self, principal: Caller, usage: Usage) -> Response[bytes]:
        credits = usage.credits(principal.org.id, billing.month_of(now()))
        return json_response(service.quota_view(credits))
