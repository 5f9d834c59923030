"""Short-lived media tokens for the relay socket: a JWT bound to one session.

Signed with a key derived from the sealing keyring, so every API process can
verify them and rotation works the same way. Never stored, never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from protoface.domain.sealing import Keyring

AUDIENCE = "protoface.media"
TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class MediaGrant:
    session_id: str
    org_id: str


class MediaTokens:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = keyring.derive("media-token")
        self._primary = keyring.primary

    def issue(self, session_id: str, org_id: str, now: datetime) -> str:
        claims = {"sid": session_id, "org": org_id, "aud": AUDIENCE,
                  "iat": int(now.timestamp()), "exp": int((now + TTL).timestamp())}
        return jwt.encode(claims, self._keys[self._primary], algorithm="HS256",
                          headers={"kid": self._primary})

    def verify(self, token: str) -> MediaGrant | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims = jwt.decode(token, key, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "sid", "org"]})
        except jwt.PyJWTError:
            return None
        return MediaGrant(str(claims["sid"]), str(claims["org"]))
