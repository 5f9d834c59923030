"""Every NATS subject, header and stream name Protoface uses, in one place.

Event log (JetStream stream ``EVENTS``), one subject per event::

    events.session.<org_id>.<session_id>.<kind>   kind = created, queued, starting, …
    events.org.<org_id>.<kind>                    kind = created, api_key_created, …

Optimistic concurrency filters (``Nats-Expected-Last-Subject-Sequence-Subject``):

    events.session.*.<session_id>.>     one session's history
    events.session.<org_id>.*.created   an org's session creations (admission)
    events.org.<org_id>.>               one org's history
"""

from __future__ import annotations

STREAM = "EVENTS"
ALL_EVENTS = "events.>"
SESSION_EVENTS = "events.session.>"
ORG_EVENTS = "events.org.>"

IDEMPOTENCY_BUCKET = "IDEMPOTENCY"

# JetStream headers (nats-py has no constant for the ``-Subject`` variant).
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
WRONG_LAST_SEQUENCE = 10071  # JetStream err_code of a stale conditional append


def event_kind(event_type: str) -> str:
    """``session.first_frame`` → ``first_frame``."""
    return event_type.split(".", 1)[1]


def session_event(org_id: str, session_id: str, event_type: str) -> str:
    return f"events.session.{org_id}.{session_id}.{event_kind(event_type)}"


def org_event(org_id: str, event_type: str) -> str:
    return f"events.org.{org_id}.{event_kind(event_type)}"


def session_history(session_id: str) -> str:
    return f"events.session.*.{session_id}.>"


def org_creations(org_id: str) -> str:
    return f"events.session.{org_id}.*.created"


def org_history(org_id: str) -> str:
    return f"events.org.{org_id}.>"
