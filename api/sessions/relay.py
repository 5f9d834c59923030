"""The relay media socket (API tier): bridges a client's WebSocket to the worker
that owns the session, over NATS media subjects.

The client starts sending speech as soon as the socket opens, before any worker
has claimed the session: that speech is buffered here (bounded; past the bound
we stop reading the socket, which pushes back on the client) and flushed, in
order, once the worker attaches. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from litestar import Request, WebSocket

from protoface.api.errors import ApiError, envelope_bytes, not_found
from protoface.api.sessions.media_tokens import MediaTokens
from protoface.domain.session import Session
from protoface.projections.sessions import SessionsModel
from protoface.streams import records
from protoface.streams.eventlog import EventLog
from protoface.streams.media import MediaChannel

log = logging.getLogger("protoface.relay")

PROTOCOL = "protoface.pipecat.media.v1"
MAX_BUFFERED_BYTES = 16 * 1024 * 1024  # ~8 minutes of 16 kHz speech before a worker attaches
WORKER_ATTACH_TIMEOUT = 60.0

# WebSocket close codes (4xxx: application-defined, mirrored on HTTP statuses).
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_GONE = 4410
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED = 1003
CLOSE_TRY_LATER = 1013


def offered_token(socket: WebSocket) -> str | None:  # type: ignore[type-arg]
    """The media token: a subprotocol other than ours (browsers cannot set headers),
    else ``Authorization: Bearer``."""
    for offered in socket.scope.get("subprotocols", []):
        if offered != PROTOCOL:
            return str(offered)
    scheme, _, token = socket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def refuse(socket: WebSocket, error: ApiError, close_code: int) -> None:  # type: ignore[type-arg]
    """Turn the handshake down with the HTTP status and error envelope an HTTP request
    would get (so another org's session is a 404, not the 403 a bare close becomes),
    where the server supports denial responses; else close with ``close_code``."""
    if "websocket.http.response" not in (socket.scope.get("extensions") or {}):
        await socket.close(code=close_code, reason=error.code)
        return
    rid = socket.scope.get("state", {}).get("request_id") or "req_unknown"
    body = envelope_bytes(error, str(rid))
    await socket.send({
        "type": "websocket.http.response.start", "status": error.status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", str(rid).encode())],
    })
    await socket.send({"type": "websocket.http.response.body", "body": body})  # type: ignore[arg-type]


class MediaLinks:
    """What a Pipecat create hands out, injected as ``media_links``: the session's
    short-lived media token and the URL of its socket."""

    def __init__(self, tokens: MediaTokens, public_url: Callable[[], str | None]) -> None:
        self.tokens = tokens
        self.public_url = public_url  # read per call: settings may be swapped while running

    def token(self, session_id: str, org_id: str, now: datetime) -> str:
        return self.tokens.issue(session_id, org_id, now)

    def url(self, request: Request, session_id: str) -> str:  # type: ignore[type-arg]
        base = self.public_url() or str(request.base_url)
        base = base.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/v1/pipecat/sessions/{session_id}/media"


class Relay:
    """What the media socket needs, injected as ``relay``: the media tokens it checks,
    the session read model, the log's media subjects."""

    def __init__(self, log: EventLog, tokens: MediaTokens, sessions: SessionsModel) -> None:
        self.log = log
        self.tokens = tokens
        self.sessions = sessions

    async def serve(self, socket: WebSocket, session_id: str) -> None:  # type: ignore[type-arg]
        state = await self._admit(socket, session_id)
        if state is None:
            return
        offered = socket.scope.get("subprotocols", [])
        await socket.accept(subprotocols=PROTOCOL if PROTOCOL in offered else None)
        channel = await MediaChannel.open(self.log, session_id, "relay")
        bridge = _Bridge(socket, channel, session_id, self.sessions)
        try:
            await bridge.run()
        finally:
            with contextlib.suppress(Exception):
                await channel.signal("closed")
            await channel.close()

    async def _admit(self, socket: WebSocket, session_id: str) -> Session | None:  # type: ignore[type-arg]
        """The session the socket's token opens, or None once the socket is refused."""
        token = offered_token(socket)
        grant = self.tokens.verify(token) if token else None
        if grant is None:
            await refuse(socket, ApiError("authentication", "invalid_media_token",
                                          "The media token is invalid or expired."),
                         CLOSE_UNAUTHORIZED)
            return None
        state = self.sessions.get(grant.org_id, session_id)
        if grant.session_id != session_id or state is None:
            # Another session's (or org's) token looks exactly like no session at all.
            await refuse(socket, not_found("session", session_id), CLOSE_NOT_FOUND)
            return None
        if state.terminal:
            await refuse(socket, ApiError("conflict", "session_terminal",
                                          f"The session is {state.status}.", status=410),
                         CLOSE_GONE)
            return None
        return state


class _Bridge:
    def __init__(
        self, socket: WebSocket, channel: MediaChannel, session_id: str,  # type: ignore[type-arg]
        sessions: SessionsModel,
    ) -> None:
        self.socket = socket
        self.channel = channel
        self.session_id = session_id
        self.sessions = sessions
        self.linked = asyncio.Event()
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._link()),
            asyncio.create_task(self._client_to_worker()),
            asyncio.create_task(self._worker_to_client()),
            asyncio.create_task(self._watch_session()),
        ]
        await asyncio.wait(tasks[1:], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.socket.close()

    async def _link(self) -> None:
        try:
            await self.channel.link(WORKER_ATTACH_TIMEOUT)
        except TimeoutError:
            await self._fail("no_worker", "No worker took this session in time.", CLOSE_TRY_LATER)
            return
        for record in self.pending:  # what the client said before the worker was there
            await self.channel.send(record)
        self.pending.clear()
        self.linked.set()

    async def _client_to_worker(self) -> None:
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if not isinstance(data, bytes):
                await self._fail("unsupported_frame", "Send binary media records.",
                                 CLOSE_UNSUPPORTED)
                return
            if len(data) > 4 + records.MAX_RECORD_BYTES:
                await self._fail("record_too_large", "Media record too large.", CLOSE_TOO_BIG)
                return
            if self.linked.is_set():
                await self.channel.send(data)
                continue
            self.pending.append(data)
            self.pending_bytes += len(data)
            if self.pending_bytes >= MAX_BUFFERED_BYTES:
                await self.linked.wait()  # stop reading: the client's sends back up

    async def _worker_to_client(self) -> None:
        async for record in self.channel.records():
            await self.socket.send_bytes(record)

    async def _watch_session(self) -> None:
        """Close the socket when the session ends without a worker (canceled, failed)."""
        while True:
            await asyncio.sleep(0.25)
            state = self.sessions.sessions.get(self.session_id)
            if state is not None and state.terminal and not self.linked.is_set():
                failure = state.failure
                if failure is not None:
                    await self._fail(failure.code, failure.message, 1000)
                return

    async def _fail(self, code: str, message: str, close_code: int) -> None:
        with contextlib.suppress(Exception):
            await self.socket.send_bytes(records.error(code, message))
            await self.socket.close(code=close_code, reason=code)
