"""Checks a customer's LiveKit ``worker_token`` at create time, without their secret.

We cannot verify the signature (the customer keeps the secret), but we can refuse
a token that could never let our worker join and publish: expired, not yet valid,
no ``roomJoin``, another room, or no right to publish.

The claims are read as a JWS compact token is laid out (RFC 7515: three base64url
segments, a JSON object header and payload) straight into typed msgspec Structs:
a claim of the wrong type makes the token malformed, where a generic JSON decode
(PyJWT's, a measurable share of a create's CPU) would hand on whatever was there. The grants keep
LiveKit's names and defaults (``livekit.api.VideoGrants``: ``canPublish`` is true
unless set, ``canPublishSources`` when set narrows it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import msgspec

from protoface.api.errors import ApiError, unprocessable

PARAM = "transport.worker_token"
# livekit-agents' ATTRIBUTE_PUBLISH_ON_BEHALF (pinned by the tests): the agent whose
# speech the avatar takes, as livekit-plugins-protoface mints the worker token.
PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
# LiveKit servers allow this much clock skew; so do we.
LEEWAY_SECONDS = 10
# A worker publishes its video and audio: both sources must be allowed.
PUBLISHED_SOURCES = frozenset({"camera", "microphone"})


class _Header(msgspec.Struct):
    """The JOSE header: it must be a JSON object; no field of it is used unsigned."""


class _VideoGrants(msgspec.Struct, rename="camel"):
    """The ``video`` claim's grants this check reads, as LiveKit names and defaults them."""

    room_join: bool | None = None
    room: str = ""
    can_publish: bool = True
    can_publish_sources: list[str] | None = None


class _Claims(msgspec.Struct):
    exp: float | None = None
    nbf: float | None = None
    sub: str = ""
    kind: str = ""
    video: _VideoGrants | None = None
    attributes: dict[str, str] | None = None


_header_decoder = msgspec.json.Decoder(_Header)
_claims_decoder = msgspec.json.Decoder(_Claims)


@dataclass(frozen=True, slots=True)
class WorkerGrant:
    identity: str
    kind: str
    publish_on_behalf: str | None
    expires_at: datetime | None


def check(token: str, room_name: str, now: datetime) -> WorkerGrant:
    claims = _claims(token)
    stamp = now.timestamp()
    exp = claims.exp
    if exp is None:
        raise _bad("worker_token_no_expiry", "worker_token must carry an `exp` claim.")
    if exp + LEEWAY_SECONDS < stamp:
        raise _bad("worker_token_expired", "worker_token has expired.")
    nbf = claims.nbf
    if nbf is not None and nbf - LEEWAY_SECONDS > stamp:
        raise _bad("worker_token_not_yet_valid", "worker_token is not valid yet (nbf).")
    video = claims.video
    if video is None or not video.room_join:
        raise _bad("worker_token_missing_room_join", "worker_token lacks the roomJoin grant.")
    if video.room != room_name:
        raise _bad("worker_token_room_mismatch",
                   f"worker_token is for room {video.room!r}, not {room_name!r}.")
    if not video.can_publish or (
        video.can_publish_sources is not None
        and not PUBLISHED_SOURCES.issubset(s.lower() for s in video.can_publish_sources)
    ):
        raise _bad("worker_token_cannot_publish",
                   "worker_token does not allow publishing camera and microphone.")
    if not claims.sub:
        raise _bad("worker_token_missing_identity", "worker_token has no identity (sub).")
    attributes = claims.attributes or {}
    return WorkerGrant(
        identity=claims.sub, kind=claims.kind,
        publish_on_behalf=attributes.get(PUBLISH_ON_BEHALF) or None,
        expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
    )


def _claims(token: str) -> _Claims:
    """The token's claims, unverified; a token that is not a JWS of JSON objects
    with well-typed claims is malformed."""
    try:
        header, payload, signature = token.split(".")
        _header_decoder.decode(_segment(header))
        _segment(signature)
        return _claims_decoder.decode(_segment(payload))
    except (ValueError, msgspec.DecodeError) as exc:
        raise _bad("worker_token_malformed", "worker_token is not a LiveKit JWT.") from exc


def _segment(text: str) -> bytes:
    """One base64url segment (unpadded, as JWS writes it); any other character is an
    error (``binascii.Error``, a ValueError), not skipped."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _bad(code: str, message: str) -> ApiError:
    return unprocessable(code, message, PARAM)
