"""From a decoded create request to a :class:`~api.sessions.NewSession`: the checks
that need more than a schema (metadata limits, reserved transports, token claims),
and sealing the worker token so it never reaches the log in clear text."""

from __future__ import annotations

from datetime import datetime

import msgspec

from protoface.api import body
from protoface.api.errors import invalid, unprocessable
from protoface.api.sessions import livekit_token
from protoface.api.sessions.schemas import (
    LiveKitTransportConfig,
    SessionCreateRequest,
)
from protoface.api.sessions.service import NewSession
from protoface.domain.sealing import Keyring
from protoface.domain.session import LiveKitTransport, MetadataValue

METADATA_MAX_BYTES = 8 * 1024
RESERVED_PREFIX = "_avatar."


# Reserved in the seed's discriminator; only their own endpoints (if any) serve them.
RESERVED_TRANSPORTS = ("pipecat", "websocket")


class _TransportType(msgspec.Struct):
    """The discriminator alone; other fields are ignored here, judged after it."""

    type: str = "livekit"  # the seed's default: an absent type means livekit


def metadata(raw: dict[str, object] | None) -> dict[str, MetadataValue]:
    if raw is None:
        return {}
    for key, value in raw.items():
        param = f"metadata.{key}"
        if key.startswith(RESERVED_PREFIX):
            raise invalid("metadata_reserved_key",
                          f"Metadata keys starting with {RESERVED_PREFIX!r} are reserved.", param)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise invalid("metadata_not_flat",
                          "Metadata values must be strings, numbers, booleans or null.", param)
    if len(msgspec.json.encode(raw)) > METADATA_MAX_BYTES:
        raise invalid("metadata_too_large", "Metadata must be at most 8 KB as JSON.", "metadata")
    return raw  # type: ignore[return-value]  # checked flat above


def transport_type(raw: msgspec.Raw) -> None:
    """Judge the discriminator before any other field: a transport this endpoint does not
    serve is refused for its ``type`` alone, whatever else the object carries (the
    other fields belong to a schema we do not apply, so they cannot be "unknown")."""
    kind = body.decode(bytes(raw), _TransportType, prefix="transport").type
    if kind == "livekit":
        return
    if kind in RESERVED_TRANSPORTS:
        hint = "; use POST /v1/pipecat/sessions" if kind == "pipecat" else ""
        message = f"transport.type={kind} is reserved and not available here{hint}."
    else:
        message = f"Unknown transport.type {kind[:64]!r}; this endpoint serves 'livekit'."
    raise invalid("transport.unsupported", message, "transport.type")


def livekit_transport(
    raw: msgspec.Raw, session_id: str, now: datetime, keyring: Keyring
) -> LiveKitTransport:
    transport_type(raw)
    config = body.decode(bytes(raw), LiveKitTransportConfig, prefix="transport")
    for name in ("url", "room_name"):
        if not getattr(config, name).strip():
            param = f"transport.{name}"
            raise invalid("invalid_value", f"{param} must not be empty.", param)
    if not config.url.startswith(("ws://", "wss://", "http://", "https://")):
        raise invalid("invalid_value", "transport.url must be a ws(s):// or http(s):// URL.",
                      "transport.url")
    grant = livekit_token.check(config.worker_token, config.room_name, now)
    identity = grant.identity
    if config.worker_identity is not msgspec.UNSET and config.worker_identity != identity:
        raise unprocessable(
            "worker_token_identity_mismatch",
            f"worker_token is for identity {identity!r}, not {config.worker_identity!r}.",
            livekit_token.PARAM,
        )
    return LiveKitTransport(
        url=config.url, room_name=config.room_name,
        worker_token_sealed=keyring.seal(config.worker_token, session_id),
        worker_identity=identity, audio_source=config.audio_source,
        subscribe_to_identity=config.subscribe_to_identity,
        synthetic_audio_if_no_input=config.synthetic_audio_if_no_input,
        publish_on_behalf=grant.publish_on_behalf,
    )


def new_session(
    request: SessionCreateRequest, session_id: str, now: datetime, keyring: Keyring
) -> NewSession:
    transport = livekit_transport(request.transport, session_id, now, keyring)
    return NewSession(
        avatar_id=request.avatar_id, quality=request.quality,
        idle_timeout_seconds=request.idle_timeout_seconds,
        max_duration_seconds=request.max_duration_seconds,
        metadata=metadata(request.metadata), transport=transport,
    )
