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
from livekit.api import TokenVerifier

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
        claims = TokenVerifier("unverified", "unverified").verify(token, verify_signature=False)
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
    video = claims.video
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
    if not claims.identity:
        raise _bad("worker_token_missing_identity", "worker_token has no identity (sub).")
    attributes = claims.attributes or {}
    return WorkerGrant(
        identity=claims.identity, kind=claims.kind,
        publish_on_behalf=attributes.get("lk.publish_on_behalf"),
        expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
    )


def _bad(code: str, message: str) -> ApiError:
    return unprocessable(code, message, PARAM)
