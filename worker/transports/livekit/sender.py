"""Whose speech the avatar takes in a LiveKit room: ``subscribe_to_identity``, else the
identity our token publishes on behalf of (``lk.publish_on_behalf``, as
livekit-plugins-protoface mints it), else the first agent participant to appear."""

from __future__ import annotations

import jwt
from livekit import rtc

from protoface.domain.session import LiveKitTransport

# livekit-agents' ATTRIBUTE_PUBLISH_ON_BEHALF (pinned by the tests).
PUBLISH_ON_BEHALF = "lk.publish_on_behalf"


def wanted_sender(config: LiveKitTransport, worker_token: str) -> str | None:
    """The identity to listen to, or None for "the first agent"."""
    if config.subscribe_to_identity:
        return config.subscribe_to_identity
    try:
        # Our own token: LiveKit verifies its signature, we only read its claims.
        claims = jwt.decode(worker_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    attributes = claims.get("attributes")
    wanted = attributes.get(PUBLISH_ON_BEHALF) if isinstance(attributes, dict) else None
    return wanted if isinstance(wanted, str) and wanted else None


def is_sender(participant: rtc.RemoteParticipant, wanted: str | None) -> bool:
    if wanted is not None:
        return participant.identity == wanted
    return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
