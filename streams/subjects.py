"""Every NATS subject, header and stream name Protoface uses, in one place.

Event log (JetStream stream ``EVENTS``), one subject per event::

    events.session.<org_id>.<session_id>.<kind>   kind = created, queued, starting, …
    events.org.<org_id>.<kind>                    kind = created, api_key_created, …
    events.webhook.<org_id>.<endpoint_id>.<kind>  kind = endpoint_created, endpoint_disabled,
                                                  endpoint_deleted, delivery_attempted
    events.avatar.<org_id>.<avatar_id>.<kind>     kind = created, built, failed, deleted

Webhook deliveries ride a durable pull consumer (``WEBHOOK_CONSUMER``) on the public
lifecycle subjects only (``WEBHOOK_SOURCES``: session queued … canceled, avatar built
and failed): a message is acked once every endpoint that wants it has settled, and
handed back with a delay (``nak``) until the next retry is due.

Webhooks on core NATS (not stored; the webhook dispatcher publishes each public
lifecycle event once, on the consumer's first delivery of it, with the body it POSTs)::

    webhooks.<org_id>.<type>     type = session.queued, session.starting, …,
                                 avatar.ready, avatar.failed
                                 (subscribe to ``webhooks.<org_id>.>`` for all of an org's)

Optimistic concurrency filters (``Nats-Expected-Last-Subject-Sequence-Subject``):

    events.session.*.<session_id>.>         one session's history
    events.org.<org_id>.session_admitted    an org's admissions (a literal subject:
                                            the check stays O(1) however many
                                            sessions the org has had); it holds
                                            both org.session_admitted and the
                                            grouped org.sessions_admitted
    events.org.<org_id>.>                   one org's history
    events.avatar.*.<avatar_id>.>           one custom avatar's history
    events.avatar.<org_id>.*.created        an org's avatar creations (slot admission;
                                            bounded by the plan's slots plus deletions)

Projection snapshots: the ``PROJECTIONS`` object store, one object per read model; the
API processes also answer ``snapshots.PROJECTIONS.save`` (core NATS, request-reply) by
saving their live models at once, so ``protoface audit verify`` compares what they
serve now.

Avatar images and built assets: the ``AVATARS`` object store, one object per key
(``<avatar_id>/source``, ``<avatar_id>/asset``), named by the events.
"""

from __future__ import annotations

import os

from protoface.domain.webhook import AVATAR_TYPES, SESSION_TYPES

STREAM = "EVENTS"
ALL_EVENTS = "events.>"
ORG_EVENTS = "events.org.>"
WEBHOOK_EVENTS = "events.webhook.>"

IDEMPOTENCY_BUCKET = "IDEMPOTENCY"
SNAPSHOTS_BUCKET = "PROJECTIONS"
RATES_BUCKET = "RATES"  # create rates per API key, shared by API processes

# Workers: the durable pull consumer they share, and the registry of live workers
# (free slots, liveness) as a KV bucket.
WORK_CONSUMER = "workers"
QUEUED_SESSIONS = "events.session.*.*.queued"
WORKERS_BUCKET = "WORKERS"

# Webhook deliveries: the dispatchers' durable pull consumer, on the stored events that
# become public webhooks (and nothing else: the consumer never sees the rest of the log).
WEBHOOK_CONSUMER = "webhook-dispatchers"

# Singleton roles (the webhook dispatcher): one holder at a time, a key per role.
LEASES_BUCKET = "LEASES"
WEBHOOK_DISPATCHER_LEASE = "webhook-dispatcher"

# Avatar builds: a durable pull consumer on ``avatar.created`` shared by every worker,
# and the object store of source images and built assets.
BUILD_CONSUMER = "avatar-builders"
CREATED_AVATARS = "events.avatar.*.*.created"
AVATARS_BUCKET = "AVATARS"

# Media is not an event: NATS core subjects, never JetStream.
#   media.<session_id>.in    client → worker records (relay tier publishes)
#   media.<session_id>.out   worker → client records (worker publishes)
#   media.<session_id>.ctl   control: "attached" from the worker, "closed" from the relay
CONTROL_HEADER = "Protoface-Control"

# JetStream headers (nats-py has no constant for the ``-Subject`` variant).
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
WRONG_LAST_SEQUENCE = 10071  # JetStream err_code of a stale conditional append
# ... and the same refusal as a clustered stream's leader words it (no number in it).
WRONG_LAST_SEQUENCES = frozenset({WRONG_LAST_SEQUENCE, 10164})


def event_kind(event_type: str) -> str:
    """``session.first_frame`` → ``first_frame``."""
    return event_type.split(".", 1)[1]


def _webhook_sources() -> tuple[str, ...]:
    sessions = (f"events.session.*.*.{event_kind(t)}" for t in SESSION_TYPES)
    avatars = (f"events.avatar.*.*.{event_kind(t)}" for t in AVATAR_TYPES)
    return (*sessions, *avatars)


def session_event(org_id: str, session_id: str, event_type: str) -> str:
    return f"events.session.{org_id}.{session_id}.{event_kind(event_type)}"


def org_event(org_id: str, event_type: str) -> str:
    return f"events.org.{org_id}.{event_kind(event_type)}"


def session_history(session_id: str) -> str:
    return f"events.session.*.{session_id}.>"


def org_sessions(org_id: str) -> str:
    """Every event of every session of one org (read-your-writes for its lists)."""
    return f"events.session.{org_id}.>"


def org_admissions(org_id: str) -> str:
    return f"events.org.{org_id}.session_admitted"


def webhook_event(org_id: str, endpoint_id: str, event_type: str) -> str:
    return f"events.webhook.{org_id}.{endpoint_id}.{event_kind(event_type)}"


def webhook_endpoint_history(endpoint_id: str) -> str:
    return f"events.webhook.*.{endpoint_id}.>"


def webhook_published(org_id: str, event_type: str) -> str:
    """Core-NATS subject of one public lifecycle event (``webhooks.<org>.<type>``)."""
    return f"webhooks.{org_id}.{event_type}"


def avatar_event(org_id: str, avatar_id: str, event_type: str) -> str:
    return f"events.avatar.{org_id}.{avatar_id}.{event_kind(event_type)}"


def avatar_history(avatar_id: str) -> str:
    return f"events.avatar.*.{avatar_id}.>"


def org_avatar_creations(org_id: str) -> str:
    return f"events.avatar.{org_id}.*.created"


def avatar_source_key(avatar_id: str) -> str:
    return f"{avatar_id}/source"


def avatar_asset_key(avatar_id: str) -> str:
    return f"{avatar_id}/asset"


def org_history(org_id: str) -> str:
    return f"events.org.{org_id}.>"


def session_events_live(session_id: str) -> str:
    """Core-NATS subject of a session's events as they are stored (for prompt reactions)."""
    return f"events.session.*.{session_id}.>"


def snapshot_requests(bucket: str) -> str:
    """Core-NATS subject on which the processes that save to snapshot ``bucket`` take a
    request to save their live read models now (``protoface audit verify`` asks)."""
    return f"snapshots.{bucket}.save"


def media_in(session_id: str) -> str:
    return f"media.{session_id}.in"


def media_out(session_id: str) -> str:
    return f"media.{session_id}.out"


def media_control(session_id: str) -> str:
    return f"media.{session_id}.ctl"


def replicas() -> int:
    """How many servers hold each stream and bucket: ``PROTOFACE_REPLICAS`` (default 1).

    Every process reads the same setting, because opening a stream also updates its
    config: one process left at R1 would shrink a cluster's R3 log back to one copy.
    Run 3 (with a 3-node cluster, see nats.conf) so a lost node loses no acknowledged write.
    """
    value = int(os.environ.get("PROTOFACE_REPLICAS", "1"))
    if value not in (1, 3, 5):
        raise ValueError(f"PROTOFACE_REPLICAS must be 1, 3 or 5, not {value}")
    return value


# The stored events the webhook consumer delivers (their types: domain.webhook).
WEBHOOK_SOURCES = _webhook_sources()
