"""An in-memory transport: the same port the relay and LiveKit implement, driven by a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from protoface.worker.transports.port import FrameOut, Inbound, Playback, until_closed


class MemoryTransport:
    observes_audio = True

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Inbound] = asyncio.Queue()
        self.frames: list[FrameOut] = []
        self.errors: list[tuple[str, str]] = []
        self.playbacks: list[Playback] = []
        self.ready_info: dict[str, object] | None = None
        self.closed = False

    async def connect(self) -> None:
        return None

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for item in until_closed(self.incoming):
            yield item

    async def ready(self, info: dict[str, object]) -> None:
        self.ready_info = info

    async def send(self, frame: FrameOut) -> None:
        self.frames.append(frame)

    def playback(self, event: Playback) -> None:
        self.playbacks.append(event)

    async def error(self, code: str, message: str) -> None:
        self.errors.append((code, message))

    async def close(self) -> None:
        self.closed = True
