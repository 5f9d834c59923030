"""Media channels between the relay tier and the worker that owns a session.

Media is not an event: records travel on NATS core subjects, never JetStream.
Both sides see a :class:`MediaChannel` with ``send`` and an async iterator of
what the other side sent; control messages (``attached``, ``closed``) go on a
third subject so they never mix with media records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from protoface.streams import subjects
from protoface.streams.eventlog import EventLog

Side = Literal["relay", "worker"]
Control = Literal["connected", "attached", "closed", "detached"]

# Each side's hello: the relay says "connected" (a client socket is open), the
# worker says "attached" (it owns the session and listens).
HELLO: dict[str, Control] = {"relay": "connected", "worker": "attached"}


class MediaChannel:
    """One side's view of a session's media. Create with :meth:`open`, then ``close``."""

    def __init__(self, nc: Client, session_id: str, side: Side, limit: int) -> None:
        self._nc = nc
        self._sid = session_id
        self._side = side
        self._records: asyncio.Queue[bytes | None] = asyncio.Queue(limit)
        self._controls: asyncio.Queue[str] = asyncio.Queue()
        self._subs: list[Subscription] = []

    @classmethod
    async def open(
        cls, log: EventLog, session_id: str, side: Side, limit: int = 4096
    ) -> MediaChannel:
        """Open ``side``'s view on the connection the process already has (``log``'s)."""
        nc = log.nc
        channel = cls(nc, session_id, side, limit)
        inbound = subjects.media_out if side == "relay" else subjects.media_in
        channel._subs.append(await nc.subscribe(inbound(session_id), cb=channel._on_record))
        channel._subs.append(
            await nc.subscribe(subjects.media_control(session_id), cb=channel._on_control)
        )
        return channel

    async def _on_record(self, msg: Msg) -> None:
        # A full queue blocks this subscription's delivery, which is NATS's own
        # slow-consumer backpressure: records are delayed, never reordered.
        await self._records.put(msg.data)

    async def _on_control(self, msg: Msg) -> None:
        headers = msg.headers or {}
        sender = headers.get("Protoface-Side")
        if sender == self._side:
            return
        control = headers.get(subjects.CONTROL_HEADER, "")
        self._controls.put_nowait(control)
        if control in ("closed", "detached"):
            # The other side is gone: end the record stream after what already arrived.
            await self._records.put(None)

    async def send(self, record: bytes) -> None:
        outbound = subjects.media_in if self._side == "relay" else subjects.media_out
        await self._nc.publish(outbound(self._sid), record)

    async def signal(self, control: Control) -> None:
        await self._nc.publish(
            subjects.media_control(self._sid), b"",
            headers={subjects.CONTROL_HEADER: control, "Protoface-Side": self._side},
        )
        await self._nc.flush()

    async def link(self, timeout: float) -> None:
        """Wait until the other side is there too, whichever side came first.

        Say hello; on hearing the peer's hello, say it once more, so a peer that
        opened before us (and whose first hello nobody heard) hears ours.
        Raises ``TimeoutError`` if the peer does not appear in time.
        """
        mine = HELLO[self._side]
        peer = HELLO["worker" if self._side == "relay" else "relay"]
        await self.signal(mine)
        async with asyncio.timeout(timeout):
            while await self._controls.get() != peer:
                pass
        await self.signal(mine)

    async def records(self) -> AsyncIterator[bytes]:
        while True:
            record = await self._records.get()
            if record is None:
                return
            yield record

    async def control(self) -> str:
        """The next control message from the other side."""
        return await self._controls.get()

    async def close(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._records.put_nowait(None)
