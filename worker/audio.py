"""Speech in: PCM normalisation (mono, 16 kHz) and the session's speech queue.

The queue holds what the avatar still has to say. The pacer takes exactly one
frame's worth of samples per tick, so what is said and what is shown can never
drift apart. It is bounded in seconds: a producer that runs ahead waits
(backpressure), nothing is dropped except by an explicit interrupt.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np

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
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)


class SpeechQueue:
    def __init__(self, max_seconds: float = 120.0, rate: int = MODEL_RATE) -> None:
        self.rate = rate
        self.max_samples = int(max_seconds * rate)
        self._chunks: deque[np.ndarray] = deque()
        self._size = 0
        self._space = asyncio.Event()
        self._space.set()
        self.last_input = time.monotonic()
        self.received_samples = 0

    @property
    def buffered(self) -> int:
        return self._size

    async def put(self, samples: np.ndarray) -> None:
        """Queue speech; waits while the queue is full (never drops)."""
        self.last_input = time.monotonic()
        while self._size >= self.max_samples:
            self._space.clear()
            await self._space.wait()
        if samples.size:
            self._chunks.append(samples)
            self._size += samples.size
            self.received_samples += samples.size

    def interrupt(self) -> int:
        """Drop everything not yet spoken; returns how many samples were dropped."""
        dropped = self._size
        self._chunks.clear()
        self._size = 0
        self._space.set()
        return dropped

    def take(self, n: int) -> tuple[np.ndarray, int]:
        """Exactly ``n`` samples (silence-padded) and how many of them were queued speech."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._chunks:
            head = self._chunks[0]
            use = min(n - filled, head.size)
            out[filled : filled + use] = head[:use]
            filled += use
            if use == head.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = head[use:]
        self._size -= filled
        if self._size < self.max_samples:
            self._space.set()
        return out, filled
