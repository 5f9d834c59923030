"""Media tokens: short-lived, bound to one session, verifiable by every API process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protoface.api.sessions.media_tokens import TTL, MediaGrant, MediaTokens
from protoface.domain.sealing import Keyring

NOW = datetime.now(UTC)


def ring(primary: str = "k1") -> Keyring:
    return Keyring({"k1": b"1" * 32, "k2": b"2" * 32}, primary)


def test_a_fresh_token_names_its_session_and_org() -> None:
    tokens = MediaTokens(ring())
    assert tokens.verify(tokens.issue("sess_a", "org_a", NOW)) == MediaGrant("sess_a", "org_a")


def test_an_expired_token_is_refused() -> None:
    tokens = MediaTokens(ring())
    stale = tokens.issue("sess_a", "org_a", NOW - TTL - timedelta(seconds=1))
    assert tokens.verify(stale) is None


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = MediaTokens(ring()).issue("sess_a", "org_a", NOW)
    head, body, signature = token.split(".")
    assert MediaTokens(ring()).verify(f"{head}.{body}.{signature[::-1]}") is None
    other = Keyring({"k1": b"9" * 32}, "k1")
    assert MediaTokens(other).verify(token) is None
    assert MediaTokens(ring()).verify("not-a-token") is None


def test_tokens_survive_a_key_rotation() -> None:
    token = MediaTokens(ring("k1")).issue("sess_a", "org_a", NOW)
    assert MediaTokens(ring("k2")).verify(token) == MediaGrant("sess_a", "org_a")
