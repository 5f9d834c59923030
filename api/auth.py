"""``Authorization: Bearer sk_live_…``: keys are looked up by their sha256, never stored."""

from __future__ import annotations

import contextlib
import hashlib
import secrets

from litestar.connection import ASGIConnection

from protoface.api.errors import ApiError
from protoface.projections.orgs import OrgsModel, Principal
from protoface.projections.runner import Projector
from protoface.streams.eventlog import LogUnavailable

KEY_PREFIX = "sk_live_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def authenticate(
    connection: ASGIConnection, orgs: OrgsModel, projector: Projector  # type: ignore[type-arg]
) -> Principal:
    header = connection.headers.get("authorization")
    if not header:
        raise ApiError("authentication", "missing_api_key",
                       "Send your API key as `Authorization: Bearer sk_live_…`.")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(KEY_PREFIX):
        raise ApiError("authentication", "invalid_api_key", "The API key is malformed.")
    digest = key_hash(key)
    principal = orgs.authenticate(digest)
    if principal is None:
        # A key created a moment ago (by the CLI, another process) may not have
        # reached this process's projection yet: catch up once, briefly.
        with contextlib.suppress(TimeoutError, LogUnavailable):
            await projector.catch_up(timeout=1.0)
            principal = orgs.authenticate(digest)
    if principal is None:
        raise ApiError("authentication", "invalid_api_key", "The API key is not valid.")
    return principal
