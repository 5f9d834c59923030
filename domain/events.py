"""Every event type of every aggregate: the closed family the event log stores."""

from __future__ import annotations

from protoface.domain import avatar, org, session, webhook

Event = session.Event | org.Event | webhook.Event | avatar.Event

SessionEvent = session.SessionEvent
OrgEvent = org.OrgEvent
WebhookEvent = webhook.WebhookEvent
AvatarEvent = avatar.AvatarEvent
