"""Whose speech the avatar takes in a LiveKit room: ``subscribe_to_identity``, else the
identity our token publishes on behalf of (``lk.publish_on_behalf``, as
livekit-plugins-protoface mints it; read from the token when the session was created),
else the first agent participant to appear."""

from __future__ import annotations

from livekit import rtc

from protoface.domain.session import LiveKitTransport


def wanted_sender(config: LiveKitTransport) -> str | None:
    """The identity to listen to, or None for "the first agent"."""
    return config.subscribe_to_identity or config.publish_on_behalf or None


def is_sender(participant: rtc.RemoteParticipant, wanted: str | None) -> bool:
    if wanted is not None:
        return participant.identity == wanted
    return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
