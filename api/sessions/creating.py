"""What every session-creating endpoint shares: the create rate limit and
``Idempotency-Key`` handling around the endpoint's own work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Request, Response

from protoface.api import idempotency
from protoface.api.services import Services
from protoface.projections.orgs import Principal

Build = Callable[[bytes], Awaitable[bytes]]


async def create(
    request: Request, services: Services, principal: Principal, build: Build  # type: ignore[type-arg]
) -> Response[bytes]:
    """Run ``build(raw body) → response body`` once per idempotency key; answer 201.

    Only requests that do work count against the create rate limit: a replay of
    an idempotent request is free.
    """
    raw = await request.body()

    async def handler() -> tuple[int, bytes]:
        plan_rate = principal.org.plan_limits.create_rate_per_minute
        if plan_rate is not None:
            rate = services.settings.create_rate_per_minute or plan_rate
            await services.rate_limiter.check(principal.key_id, rate)
        return 201, await build(raw)

    key = request.headers.get(idempotency.HEADER)
    headers: dict[str, str] = {}
    if key is None:
        status, content = await handler()
    else:
        idempotency.check_key(key)
        fp = idempotency.fingerprint(request.method, request.url.path, raw)
        status, content, replayed = await idempotency.run(
            services.idempotency, principal.org.id, key, fp, handler
        )
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    return Response(content=content, status_code=status, media_type="application/json",
                    headers=headers)
