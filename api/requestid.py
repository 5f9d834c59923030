"""The one ASGI middleware around the whole app: assigns ``req_<ULID>`` to every
request and echoes it as ``X-Request-Id``, and times each HTTP request for the
access log and ``protoface_http_request_seconds``.

It sits outside Litestar, so even a request that matches no route gets an id, and
one wrapper does what two did: Litestar puts an extra exception-handling layer
between a handler and any middleware of its own, and each layer wraps ``send``
again (a measurable share of a create's CPU; docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client.metrics import Histogram

from protoface.api import metrics
from protoface.domain import ids

access_log = logging.getLogger("protoface.access")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        # A plain dict view: Litestar types the scope per kind, and this middleware reads
        # keys (the route template, the method) that only some of its kinds declare.
        raw = cast(dict[str, Any], scope)
        kind = raw["type"]
        if kind not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        request_id = ids.new_id(ids.REQUEST)
        raw.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                fields = cast(dict[str, Any], message)
                fields["headers"] = [*fields.get("headers", []), header]
            await send(message)

        if kind == "websocket":
            await app(scope, receive, send_with_id)
            return
        started = time.perf_counter()
        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # Set by Litestar's router on this same scope once the path matched a route.
            route = raw.get("path_template") or "unmatched"
            _timer(raw["method"], route, status).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "request_id": request_id, "method": raw["method"],
                    "path": raw["path"], "status": status, "ms": round(elapsed * 1000, 2),
                })

    return middleware


# The histogram's child per (method, route, status): ``labels()`` validates and locks
# on every call. Routes are templates and statuses few, so this stays small.
_timers: dict[tuple[str, str, int], Histogram] = {}


def _timer(method: str, route: str, status: int) -> Histogram:
    timer = _timers.get((method, route, status))
    if timer is None:
        timer = _timers[method, route, status] = metrics.REQUEST_SECONDS.labels(
            method, route, str(status))
    return timer
