"""Subjects only the tests read (the production subjects: ``protoface.streams.subjects``)."""

from __future__ import annotations

# Every avatar event: a second avatars read model folded beside the app's.
AVATAR_EVENTS = "events.avatar.>"


def org_creations(org_id: str) -> str:
    """An org's ``session.created`` events (admission is conditioned on
    ``subjects.org_admissions`` instead; the tests read creations to count them)."""
    return f"events.session.{org_id}.*.created"
