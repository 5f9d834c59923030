"""``POST /v1/pipecat/sessions`` and the relay media socket it hands out."""

from __future__ import annotations

from litestar import Controller, Request, Response, WebSocket, post, websocket
from litestar.di import NamedDependency
from litestar.params import FromPath

from protoface.api import body
from protoface.api.http import encode, now
from protoface.api.sessions import validation
from protoface.api.sessions.creating import CreateGate
from protoface.api.sessions.relay import PROTOCOL, MediaLinks, Relay
from protoface.api.sessions.schemas import (
    PipecatRelayView,
    PipecatSessionCreateRequest,
    PipecatSessionView,
    session_view,
)
from protoface.api.sessions.service import NewSession, SessionService
from protoface.domain import ids
from protoface.domain.session import PipecatTransport
from protoface.projections.orgs import Principal

Caller = NamedDependency[Principal]


class PipecatController(Controller):
    path = "/v1/pipecat/sessions"

    @post("/", status_code=201)
    async def create(
        self, request: Request, principal: Caller,  # type: ignore[type-arg]
        sessions: NamedDependency[SessionService], creating: NamedDependency[CreateGate],
        media_links: NamedDependency[MediaLinks],
    ) -> Response[bytes]:
        async def build(raw: bytes) -> bytes:
            decoded = body.decode(raw, PipecatSessionCreateRequest)
            session_id, at = ids.new_id(ids.SESSION), now()
            transport = PipecatTransport()
            new = NewSession(
                avatar_id=decoded.avatar_id, quality=decoded.quality,
                idle_timeout_seconds=decoded.idle_timeout_seconds,
                max_duration_seconds=decoded.max_duration_seconds,
                metadata=validation.metadata(decoded.metadata), transport=transport,
            )
            state = await sessions.create(principal, new, at, session_id)
            token = media_links.token(session_id, principal.org.id, at)
            view = PipecatSessionView(
                session=session_view(state),
                relay=PipecatRelayView(
                    protocol=PROTOCOL,
                    media_url=media_links.url(request, session_id),
                    media_token=token, audio_sample_rate=transport.audio_sample_rate,
                    video_encoding=transport.video_encoding,
                ),
            )
            return encode(view)

        return await creating.create(request, principal, build)

    @websocket("/{session_id:str}/media")
    async def media(
        self, socket: WebSocket, session_id: FromPath[str],  # type: ignore[type-arg]
        relay: NamedDependency[Relay],
    ) -> None:
        await relay.serve(socket, session_id)
