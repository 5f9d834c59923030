"""Per-key create rate limit: a sliding one-minute window, shared by every API process.

The window lives in a JetStream KV bucket (``streams.rates``), so N API processes
behind one address allow the per-key rate once, not N times. Without a store (a
process built without NATS, as some tests do) it is kept in this process.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque

from protoface.api.errors import ApiError
from protoface.streams.rates import CreateRates

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, shared: CreateRates | None = None) -> None:
        self._shared = shared
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    async def check(self, key_id: str, per_minute: int | None) -> None:
        if per_minute is None:
            return
        if self._shared is not None:
            retry_after = await self._shared.hit(key_id, per_minute, time.time())
        else:
            retry_after = self._local(key_id, per_minute, time.monotonic())
        if retry_after is not None:
            raise ApiError(
                "rate_limit", "rate_limited",
                f"At most {per_minute} session creates per minute per API key.",
                headers={"Retry-After": str(retry_after)},
            )

    def _local(self, key_id: str, per_minute: int, now: float) -> int | None:
        hits = self._hits[key_id]
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        if len(hits) >= per_minute:
            return max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
        hits.append(now)
        return None
