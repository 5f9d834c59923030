"""Request and response bodies of the public API, field for field as ``seed/openapi.json``.

The official SDK parses responses with ``extra="forbid"``: nothing may be added here
that the OpenAPI document does not list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protoface.domain.session import LiveKitTransport, MetadataValue, Quality, Session, Status

REDACTED = "[redacted]"

# ── Requests ────────────────────────────────────────────────────────────────────


class LiveKitTransportConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["livekit"] = "livekit"
    url: str
    room_name: str
    worker_token: str
    # UNSET: take the identity from the worker token's ``sub``.
    worker_identity: str | msgspec.UnsetType = msgspec.UNSET
    audio_source: Literal["data_stream", "track"] = "data_stream"
    subscribe_to_identity: str | None = None
    synthetic_audio_if_no_input: bool = False


class SessionCreateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    avatar_id: str
    # Decoded on its own (see ``api.sessions.validation.transport_type``): the ``type``
    # is judged first, so a reserved or unknown one is refused whatever its fields.
    transport: msgspec.Raw
    idle_timeout_seconds: Annotated[int, Meta(ge=1, le=600)] = 30
    max_duration_seconds: Annotated[int, Meta(ge=1, le=3600)] | None = None
    # Any JSON here; ``api.validation.metadata`` names the offending key precisely.
    metadata: dict[str, object] | None = None
    quality: Quality = "standard"


class PipecatSessionCreateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    avatar_id: str
    idle_timeout_seconds: Annotated[int, Meta(ge=1, le=600)] = 30
    max_duration_seconds: Annotated[int, Meta(ge=1, le=3600)] | None = None
    metadata: dict[str, object] | None = None
    quality: Quality = "standard"
    relay_mode: Literal["websocket"] = "websocket"


# ── Responses ───────────────────────────────────────────────────────────────────


class SessionUsage(msgspec.Struct):
    billable_seconds: int
    frames: int


class SessionFailure(msgspec.Struct):
    code: str
    message: str


class LiveKitTransportView(msgspec.Struct, kw_only=True):
    type: Literal["livekit"] = "livekit"
    url: str
    room_name: str
    audio_source: str
    worker_identity: str
    subscribe_to_identity: str | None
    synthetic_audio_if_no_input: bool
    worker_token: str = REDACTED


class PipecatTransportView(msgspec.Struct, kw_only=True):
    type: Literal["pipecat"] = "pipecat"


class SessionView(msgspec.Struct, kw_only=True):
    object: Literal["session"] = "session"
    id: str
    avatar_id: str
    status: Status
    quality: Quality
    created_at: datetime
    started_at: datetime | None
    first_frame_at: datetime | None
    ended_at: datetime | None
    failed_at: datetime | None
    failure: SessionFailure | None
    idle_timeout_seconds: int
    max_duration_seconds: int
    metadata: dict[str, MetadataValue]
    transport: LiveKitTransportView | PipecatTransportView
    usage: SessionUsage


class PipecatRelayView(msgspec.Struct, kw_only=True):
    type: Literal["websocket"] = "websocket"
    protocol: str
    media_url: str
    media_token: str
    audio_sample_rate: int
    video_encoding: Literal["jpeg", "rgb24"]
    decoded_video_format: Literal["RGB"] = "RGB"
    supports_audio_output: bool = True


class PipecatSessionView(msgspec.Struct, kw_only=True):
    object: Literal["pipecat.session"] = "pipecat.session"
    session: SessionView
    relay: PipecatRelayView


def session_view(state: Session) -> SessionView:
    transport: LiveKitTransportView | PipecatTransportView
    t = state.transport
    if isinstance(t, LiveKitTransport):
        transport = LiveKitTransportView(
            url=t.url, room_name=t.room_name, audio_source=t.audio_source,
            worker_identity=t.worker_identity, subscribe_to_identity=t.subscribe_to_identity,
            synthetic_audio_if_no_input=t.synthetic_audio_if_no_input,
        )
    else:
        transport = PipecatTransportView()
    failure = SessionFailure(state.failure.code, state.failure.message) if state.failure else None
    return SessionView(
        id=state.id, avatar_id=state.avatar_id, status=state.status, quality=state.quality,
        created_at=state.created_at, started_at=state.started_at,
        first_frame_at=state.first_frame_at, ended_at=state.ended_at,
        failed_at=state.failed_at, failure=failure,
        idle_timeout_seconds=state.idle_timeout_seconds,
        max_duration_seconds=state.max_duration_seconds, metadata=state.metadata,
        transport=transport,
        usage=SessionUsage(billable_seconds=state.billable_seconds, frames=state.frames),
    )

