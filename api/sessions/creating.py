"""What every session-creating endpoint shares: the create rate limit and
``Idempotency-Key`` handling around the endpoint's own work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Request, Response

from protoface.api import idempotency
from protoface.api.ratelimit import RateLimiter
from protoface.projections.orgs import Principal
from protoface.streams.idempotency import IdempotencyStore

Build = Callable[[bytes], Awaitable[bytes]]


class CreateGate:
    """The create rate limit and idempotency replay, injected as ``creating``.

    ``rate_override`` is read at each create (the configured limit in place of the
    plan's), so settings swapped on the running composition take effect at once.
    """

    def __init__(self, store: IdempotencyStore, limiter: RateLimiter,
                 rate_override: Callable[[], int | None]) -> None:
        self.store = store
        self.limiter = limiter
        self.rate_override = rate_override

    async def create(
        self, request: Request, principal: Principal, build: Build  # type: ignore[type-arg]
    ) -> Response[bytes]:
        """Run ``build(raw body) → response body`` once per idempotency key; answer 201.

        Only requests that do work count against the create rate limit: a replay of
        an idempotent request is free.
        """
        raw = await request.body()

        async def handler() -> tuple[int, bytes]:
            await self._count(principal)
            return 201, await build(raw)

        key = request.headers.get(idempotency.HEADER)
        headers: dict[str, str] = {}
        if key is None:
            status, content = await handler()
        else:
            idempotency.check_key(key)
            fp = idempotency.fingerprint(request.method, request.url.path, raw)
            status, content, replayed = await idempotency.run(
                self.store, principal.org.id, key, fp, handler
            )
            if replayed:
                headers["Idempotent-Replayed"] = "true"
        return Response(content=content, status_code=status, media_type="application/json",
                        headers=headers)

    async def _count(self, principal: Principal) -> None:
        """One create against the key's rate limit (none on a plan without one)."""
        plan_rate = principal.org.plan_limits.create_rate_per_minute
        if plan_rate is not None:
            rate = self.rate_override() or plan_rate
            await self.limiter.check(principal.key_id, rate)
