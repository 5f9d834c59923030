"""Speech in: PCM normalisation (mono, 16 kHz) and the session's speech queue.

The queue holds what the avatar still has to say. The pacer takes exactly one
frame's worth of samples per tick, so what is said and what is shown can never
drift apart. It is bounded in seconds: a producer that runs ahead waits
(backpressure), nothing is dropped except by an explicit interrupt.

Speech may belong to numbered segments (LiveKit's avatar protocol): the queue then
reports when a segment's first sample is taken and when its last one is (or when an
interrupt drops the rest), with how much of it played.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoface.worker.transports.port import Playback

MODEL_RATE = 16_000


def to_mono_int16(pcm: bytes, channels: int) -> np.ndarray:
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples


class Resampler:
    """Streaming linear resampler: keeps its phase across chunks, so no clicks at seams."""

    def __init__(self, source_rate: int, target_rate: int = MODEL_RATE) -> None:
        self.source_rate = source_rate
        self.target_rate = target_rate
        self._step = source_rate / target_rate
        # Index 0 of each working buffer is the previous chunk's last sample;
        # ``_t`` is where the next output sample falls in that buffer.
        self._prev = np.zeros(1, dtype=np.float64)
        self._t = 1.0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self.source_rate == self.target_rate or samples.size == 0:
            return samples
        buf = np.concatenate([self._prev, samples.astype(np.float64)])
        last = buf.size - 1
        positions = np.arange(self._t, last + 1e-9, self._step)
        out = np.interp(positions, np.arange(buf.size), buf)
        self._t = (positions[-1] + self._step if positions.size else self._t) - last
        self._prev = buf[-1:]
        clipped: np.ndarray = np.clip(np.round(out), -32768, 32767).astype(np.int16)
        return clipped


@dataclass(eq=False, slots=True)
class _Segment:
    id: str
    played: int = 0  # samples the pacer has taken
    started: bool = False


def _settle_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# Queued after a segment's last sample: reaching it means the whole segment played.
_END = np.zeros(0, dtype=np.int16)
# Ids of segments already reported finished, so late speech for an interrupted segment
# is dropped rather than played (and reported) again.
_REMEMBERED = 64


class SpeechQueue:
    def __init__(
        self, max_seconds: float = 120.0, rate: int = MODEL_RATE, *,
        on_playback: Callable[[Playback], None] | None = None,
    ) -> None:
        self.rate = rate
        self.max_samples = int(max_seconds * rate)
        self._chunks: deque[tuple[np.ndarray, _Segment | None]] = deque()
        self._size = 0
        self._space = asyncio.Event()
        self._space.set()
        self.last_input = time.monotonic()
        self.received_samples = 0
        self._on_playback = on_playback
        self._live: dict[str, _Segment] = {}  # queued or playing, not yet reported finished
        self._finished: deque[str] = deque(maxlen=_REMEMBERED)
        self._arrival: asyncio.Future[None] | None = None

    @property
    def buffered(self) -> int:
        return self._size

    async def put(self, samples: np.ndarray, segment: str | None = None, *,
                  observed: bool = True) -> None:
        """Queue speech; waits while the queue is full (never drops).

        ``observed`` False (synthetic filler) leaves the idle clock alone."""
        if observed:
            self.last_input = time.monotonic()
        while self._size >= self.max_samples:
            self._space.clear()
            await self._space.wait()
        seg = self._segment(segment)
        if seg is None and segment is not None:
            return  # that segment was interrupted: its stragglers must not play
        if samples.size:
            self._chunks.append((samples, seg))
            self._size += samples.size
            self.received_samples += samples.size
            if self._arrival is not None and not self._arrival.done():
                self._arrival.set_result(None)

    async def arrival(self, timeout: float, *,
                      unless: asyncio.Future[Any] | None = None) -> None:
        """Return when speech is next queued, after ``timeout`` seconds, or when ``unless``
        is done.

        A future and a timer rather than ``wait_for(event.wait())``: every idle session
        waits here once per tick, and a task per wait would cost more than the wait."""
        loop = asyncio.get_running_loop()
        arrival = self._arrival = loop.create_future()
        timer = loop.call_later(timeout, _settle_future, arrival)

        def settle(_: asyncio.Future[Any]) -> None:
            _settle_future(arrival)

        if unless is not None:
            unless.add_done_callback(settle)
        try:
            await arrival
        finally:
            timer.cancel()
            self._arrival = None
            if unless is not None:
                unless.remove_done_callback(settle)

    def end_segment(self, segment: str) -> None:
        """Every sample of ``segment`` is queued: report it finished once they have played."""
        seg = self._segment(segment)
        if seg is not None:
            self._chunks.append((_END, seg))

    def interrupt(self) -> int:
        """Drop everything not yet spoken; returns how many samples were dropped."""
        dropped = self._size
        self._chunks.clear()
        self._size = 0
        self._space.set()
        for seg in list(self._live.values()):
            self._finish(seg, interrupted=True)
        return dropped

    def close(self) -> None:
        """The session is over: report segments whose end was reached, drop the rest."""
        self._settle()
        self.interrupt()

    def take(self, n: int) -> tuple[np.ndarray, int]:
        """Exactly ``n`` samples (silence-padded) and how many of them were queued speech."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._chunks:
            head, seg = self._chunks[0]
            if head is _END:
                self._settle()
                continue
            if seg is not None and not seg.started:
                seg.started = True
                self._report(Playback(seg.id, finished=False))
            use = min(n - filled, head.size)
            out[filled : filled + use] = head[:use]
            filled += use
            if seg is not None:
                seg.played += use
            if use == head.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = (head[use:], seg)
        # A segment whose last sample went out in this chunk is finished now, not a tick later.
        self._settle()
        self._size -= filled
        if self._size < self.max_samples:
            self._space.set()
        return out, filled

    def peek(self, n: int) -> np.ndarray:
        """Up to ``n`` queued samples that ``take`` would return next, without taking them.

        The face driver's lookahead: it sees the speech that follows a frame, and the
        queue, the segments and their playback reports are left exactly as they were."""
        parts: list[np.ndarray] = []
        wanted = n
        for head, _ in self._chunks:
            if wanted <= 0:
                break
            parts.append(head[:wanted])
            wanted -= parts[-1].size
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def _settle(self) -> None:
        while self._chunks and self._chunks[0][0] is _END:
            _, seg = self._chunks.popleft()
            assert seg is not None
            self._finish(seg, interrupted=False)

    def _segment(self, segment: str | None) -> _Segment | None:
        if segment is None or segment in self._finished:
            return None
        seg = self._live.get(segment)
        if seg is None:
            seg = self._live[segment] = _Segment(segment)
        return seg

    def _finish(self, seg: _Segment, *, interrupted: bool) -> None:
        if self._live.pop(seg.id, None) is None:
            return
        self._finished.append(seg.id)
        self._report(Playback(seg.id, finished=True, position=seg.played / self.rate,
                              interrupted=interrupted))

    def _report(self, event: Playback) -> None:
        if self._on_playback is not None:
            self._on_playback(event)
