"""Per-key create rate limit: a sliding one-minute window, in this process.

Behind a load balancer each API process enforces the limit on what it sees;
sticky routing by key (or a lower per-process limit) keeps it exact.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque

from protoface.api.errors import ApiError

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self) -> None:
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    def check(self, key_id: str, per_minute: int | None, now: float) -> None:
        if per_minute is None:
            return
        hits = self._hits[key_id]
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        if len(hits) >= per_minute:
            retry_after = max(1, math.ceil(hits[0] + WINDOW_SECONDS - now))
            raise ApiError(
                "rate_limit", "rate_limited",
                f"At most {per_minute} session creates per minute per API key.",
                headers={"Retry-After": str(retry_after)},
            )
        hits.append(now)
