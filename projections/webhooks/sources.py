"""A lifecycle event as its webhooks carry it: the public resource as of that event.

The resource is rendered from the aggregate's history up to the event, read from the
log (so a late or repeated delivery carries what was true then, not what is true now),
together with the earlier lifecycle events of its session that must reach an endpoint
first (a session's events reach an endpoint in order).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from protoface.domain import avatar, session, webhook
from protoface.domain.avatar import Avatar, AvatarEvent
from protoface.domain.events import Event
from protoface.domain.session import Session, SessionEvent
from protoface.domain.webhook import Delivery
from protoface.streams.eventlog import EventLog, Stored, history_of

HISTORIES_KEPT = 1024  # aggregates whose history is kept at hand
_encoder = msgspec.json.Encoder()

Render = Callable[[Session], Any]
RenderAvatar = Callable[[Avatar], Any]
# An earlier lifecycle event of the session: (seq, public type, webhook id).
Earlier = tuple[int, str, str]


@dataclass(frozen=True)
class Source:
    """A lifecycle event as its webhooks carry it, with the earlier lifecycle events
    of its session that must reach an endpoint first."""

    org_id: str
    seq: int
    delivery: Delivery
    body: bytes
    earlier: tuple[Earlier, ...] = ()


def lifecycle_body(event_type: str, at: datetime, data: Any) -> bytes:
    """``{type, timestamp, data}``: what is POSTed and published."""
    return _encoder.encode({"type": event_type, "timestamp": at, "data": data})


class Sources:
    """Renders sources. ``render`` turns a session into its public resource,
    ``render_avatar`` an avatar (without it, ``avatar.*`` events have no source)."""

    def __init__(self, event_log: EventLog, render: Render,
                 render_avatar: RenderAvatar | None = None) -> None:
        self.log = event_log
        self.render = render
        self.render_avatar = render_avatar
        # Recent aggregates' histories (subject filter → stored events, oldest first):
        # a session's lifecycle events come one after another.
        self._histories: OrderedDict[str, list[Stored]] = OrderedDict()

    async def of(self, event: Event, seq: int) -> Source | None:
        """The source of ``event`` stored at ``seq``; None if it sends no webhook."""
        history = await self._history(event, seq)
        if isinstance(event, SessionEvent):
            return self._session_source(event, seq, history)
        if isinstance(event, AvatarEvent):
            return self._avatar_source(event, seq, history)
        return None  # not a lifecycle event (the consumer's filter lets none through)

    def _session_source(self, event: SessionEvent, seq: int,
                        history: list[Stored]) -> Source | None:
        state: Session | None = None
        earlier: list[Earlier] = []
        for stored in history:
            assert isinstance(stored.event, SessionEvent)
            state = session.evolve(state, stored.event)
            public = webhook.SESSION_TYPES.get(_type_of(stored.event))
            if public is not None and stored.seq < seq:
                earlier.append((stored.seq, public, webhook.webhook_id(stored.event.id)))
        public = webhook.SESSION_TYPES.get(_type_of(event))
        if state is None or public is None:
            return None
        return _made(event, seq, public, self.render(state), event.session_id, tuple(earlier))

    def _avatar_source(self, event: AvatarEvent, seq: int,
                       history: list[Stored]) -> Source | None:
        state: Avatar | None = None
        for stored in history:
            assert isinstance(stored.event, AvatarEvent)
            state = avatar.evolve(state, stored.event)
        public = webhook.AVATAR_TYPES.get(_type_of(event))
        if (state is None or public is None or self.render_avatar is None
                or state.status == "deleted"):
            return None
        return _made(event, seq, public, self.render_avatar(state), None)

    async def _history(self, event: Event, seq: int) -> list[Stored]:
        """The events of ``event``'s aggregate up to ``seq`` (read once, then extended)."""
        subject = history_of(event)
        known = self._histories.get(subject, [])
        if known and known[-1].seq >= seq:
            self._histories.move_to_end(subject)
            return [s for s in known if s.seq <= seq]
        start = known[-1].seq + 1 if known else 1
        stored = [*known, *await self.log.read(subject, start, seq)]
        latest = self._histories.get(subject)
        if latest is None or latest[-1].seq < stored[-1].seq:  # another handler may be ahead
            self._histories[subject] = stored
            self._histories.move_to_end(subject)
            while len(self._histories) > HISTORIES_KEPT:
                self._histories.popitem(last=False)
        return stored


def _made(event: SessionEvent | AvatarEvent, seq: int, public: str, data: Any,
          session_id: str | None, earlier: tuple[Earlier, ...] = ()) -> Source:
    delivery = Delivery(webhook_id=webhook.webhook_id(event.id), event_type=public,
                        session_id=session_id, source_event_id=event.id)
    return Source(event.org_id, seq, delivery, lifecycle_body(public, event.at, data), earlier)


def _type_of(event: msgspec.Struct) -> str:
    event_type = type(event).__struct_config__.tag
    assert isinstance(event_type, str)
    return event_type
