"""Checks a customer's LiveKit ``worker_token`` at create time, without their secret.

We cannot verify the signature (the customer keeps the secret), but we can refuse
a token that could never let our worker join and publish: expired, not yet valid,
no ``roomJoin``, another room, or no right to publish. Uses livekit-api's own
claim parsing so grants mean exactly what they mean to a LiveKit server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jwt
from livekit.api import VideoGrants
from livekit.api.access_token import camel_to_snake

from api.errors import ApiError, unprocessable

PARAM = "transport.worker_token"
# LiveKit servers allow this much clock skew; so do we.
LEEWAY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class WorkerGrant:
    identity: str
    kind: str
    publish_on_behalf: str | None
    expires_at: datetime | None


def check(token: str, room_name: str, now: datetime) -> WorkerGrant:
    try:
        raw = jwt.decode(token, options={"verify_signature": False})
        video = _video_grants(raw.get("video"))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise _bad("worker_token_malformed", "worker_token is not a LiveKit JWT.") from exc
    stamp = now.timestamp()
    exp = raw.get("exp")
    if not isinstance(exp, int | float):
        raise _bad("worker_token_no_expiry", "worker_token must carry an `exp` claim.")
    if exp + LEEWAY_SECONDS < stamp:
        raise _bad("worker_token_expired", "worker_token has expired.")
    nbf = raw.get("nbf")
    if isinstance(nbf, int | float) and nbf - LEEWAY_SECONDS > stamp:
        raise _bad("worker_token_not_yet_valid", "worker_token is not valid yet (nbf).")
    if video is None or not video.room_join:
        raise _bad("worker_token_missing_room_join", "worker_token lacks the roomJoin grant.")
    if video.room != room_name:
        raise _bad("worker_token_room_mismatch",
                   f"worker_token is for room {video.room!r}, not {room_name!r}.")
    if not video.can_publish or (
        video.can_publish_sources is not None
        and not {"camera", "microphone"} <= {s.lower() for s in video.can_publish_sources}
    ):
        raise _bad("worker_token_cannot_publish",
                   "worker_token does not allow publishing camera and microphone.")
    identity = raw.get("sub")
    if not isinstance(identity, str) or not identity:
        raise _bad("worker_token_missing_identity", "worker_token has no identity (sub).")
    attributes = raw.get("attributes") or {}
    return WorkerGrant(
        identity=identity, kind=str(raw.get("kind", "")),
        publish_on_behalf=attributes.get("lk.publish_on_behalf"),
        expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
    )


def _video_grants(claim: object) -> VideoGrants | None:
    """The ``video`` claim as livekit-api's own VideoGrants (decoded once, as its
    TokenVerifier does, without the signature check we cannot make)."""
    if claim is None:
        return None
    if not isinstance(claim, dict):
        raise TypeError("video claim is not an object")
    fields = VideoGrants.__dataclass_fields__
    grants = {camel_to_snake(k): v for k, v in claim.items()}
    return VideoGrants(**{k: v for k, v in grants.items() if k in fields})


def _bad(code: str, message: str) -> ApiError:
    return unprocessable(code, message, PARAM)
