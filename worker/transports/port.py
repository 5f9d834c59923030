"""The transport port: what the session pipeline needs from any transport.

The relay (our WebSocket, bridged over NATS) and LiveKit (the customer's room)
both implement it; they only translate between their wire and these types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class SpeechIn:
    """Speech for the avatar, already mono int16 at the model rate."""

    samples: np.ndarray
    # Set by transports whose sender wants to hear when each segment plays (LiveKit's
    # avatar protocol); the pipeline then reports :class:`Playback` for it.
    segment: str | None = None
    # Filler we generate ourselves (the demo aid) is nobody speaking: it must not
    # hold off the idle timeout.
    synthetic: bool = False


@dataclass(frozen=True, slots=True)
class Flush:
    """End of an utterance; with ``segment``, every sample of that segment is queued."""

    segment: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Drop queued speech now."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The other side left (client disconnect, participant gone)."""

    reason: str = "client_disconnected"


@dataclass(frozen=True, slots=True)
class Refused:
    """Inbound data the transport could not accept (malformed record, bad rate…)."""

    code: str
    message: str


Inbound = SpeechIn | Flush | Interrupt | Closed | Refused


async def until_closed(inbox: asyncio.Queue[Inbound]) -> AsyncIterator[Inbound]:
    """A transport's inbox as its ``inbound()``: every item, ending with the ``Closed``."""
    while True:
        item = await inbox.get()
        yield item
        if isinstance(item, Closed):
            return


@dataclass(frozen=True, slots=True)
class Playback:
    """The pipeline's report on a numbered segment: its first sample went out
    (``finished`` False), or its last one did / the rest was dropped (``interrupted``)."""

    segment: str
    finished: bool
    position: float = 0.0  # seconds of the segment that actually played
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class FrameOut:
    """One output tick: an encoded video frame and the speech that plays with it."""

    index: int
    timestamp_ms: int
    frame: np.ndarray | None  # H×W×3 uint8; None: dropped (slow tick), audio still plays
    audio: np.ndarray  # int16 mono at the model rate, exactly one frame long


class TransportError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Transport(Protocol):
    # Whether inbound speech is observed (the idle timeout applies only then).
    observes_audio: bool

    async def connect(self) -> None:
        """Join the transport; raise :class:`TransportError` on failure."""

    def inbound(self) -> AsyncIterator[Inbound]: ...

    async def ready(self, info: dict[str, object]) -> None: ...

    async def send(self, frame: FrameOut) -> None: ...

    def playback(self, event: Playback) -> None:
        """Called from the pacer: must not block (queue it if it needs the network)."""

    async def error(self, code: str, message: str) -> None: ...

    async def close(self) -> None: ...
