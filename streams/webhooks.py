"""The webhook dispatchers' work queue: a durable pull consumer on the lifecycle events.

:class:`WebhookQueue` hands each stored public lifecycle event
(``subjects.WEBHOOK_SOURCES``) to one dispatcher at a time. The dispatcher acks it
(``done``) once every endpoint that wants it has settled, and otherwise hands it
back with a delay (``later``: a ``nak`` with that delay) so that JetStream delivers
it again when the next attempt is due: the retries ride the consumer, and a
dispatcher keeps no timers of its own. While attempts run it says so
(``working``: ``in_progress``), so ``ack_wait`` only passes for a dispatcher that
died; its messages are then redelivered to whoever fetches next.

Settings: explicit acks, no delivery limit (retries end when the log says the
delivery settled, not after N deliveries), and ``max_ack_pending`` high, because a
message waiting for its retry counts as pending the whole time. The consumer starts
at ``since`` when it is first created (events older than the dispatcher's horizon are
never delivered anyway, so a new consumer on a long log does not walk all of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from protoface.streams.work import EventQueue, Job

__all__ = ["Backlog", "Job", "WebhookQueue"]


@dataclass(frozen=True, slots=True)
class Backlog:
    """The consumer's state: ``unacked`` messages handed out and not yet acked (in hand
    or waiting for a retry), ``undelivered`` not handed out yet, ``redelivered`` among
    the unacked that went out more than once, ``acked_through`` the stream sequence up
    to which every message is acked."""

    unacked: int
    undelivered: int
    redelivered: int
    acked_through: int


class WebhookQueue(EventQueue):
    durable = subjects.WEBHOOK_CONSUMER
    subject = subjects.ALL_EVENTS  # narrowed by ``filter_subjects`` below
    # Well above one attempt (a 10 s POST, then its append), renewed while attempts run.
    ack_wait = 60.0
    max_ack_pending = 100_000

    @classmethod
    async def open_since(
        cls, log: EventLog, since: datetime, ack_wait: float | None = None,
    ) -> WebhookQueue:
        config = ConsumerConfig(
            durable_name=cls.durable, filter_subjects=list(subjects.WEBHOOK_SOURCES),
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since, ack_wait=ack_wait or cls.ack_wait, max_deliver=-1,
            max_ack_pending=cls.max_ack_pending,
        )
        return await cls._bind(log, config)

    async def backlog(self) -> Backlog:
        info = await self._sub.consumer_info()  # type: ignore[attr-defined]
        return Backlog(
            unacked=int(info.num_ack_pending or 0), undelivered=int(info.num_pending or 0),
            redelivered=int(info.num_redelivered or 0),
            acked_through=int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0,
        )
