"""Assigns ``req_<ULID>`` to every request and echoes it as ``X-Request-Id``."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain import ids


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        request_id = ids.new_id(ids.REQUEST)
        scope.setdefault("state", {})["request_id"] = request_id  # type: ignore[typeddict-item]
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]  # type: ignore[typeddict-unknown-key]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware
