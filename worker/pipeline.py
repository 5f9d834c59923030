"""One session's media pipeline: speech in → features → renderer → pacer → transport.

The pacer ticks at the tier's frame rate on the wall clock. Each tick takes
exactly one frame of speech from the queue, renders the face for it, and sends
the frame and that audio together: sound and mouth cannot drift apart. A tick
that runs late still sends its audio but drops its video frame. Speech that starts
after silence does not wait for the next tick (see ``Pipeline._until``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from protoface.domain.tiers import Tier
from protoface.worker import metrics
from protoface.worker.audio import SpeechQueue
from protoface.worker.capacity.overload import TICKS
from protoface.worker.face.features import FaceDriver, FaceParams, speech_batch
from protoface.worker.transports.port import (
    Closed,
    Flush,
    FrameOut,
    Interrupt,
    Refused,
    SpeechIn,
    Transport,
)

log = logging.getLogger("protoface.worker.pipeline")

# Once speech is queued, how much longer an idle session waits for its silent frame
# before giving it up so the speech is shown sooner (``Pipeline._silent``): a batch of a
# few sessions is done by then, a full one at load is not.
ONSET_PATIENCE_S = 0.01


class Renderer(Protocol):
    width: int
    height: int

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]: ...


@runtime_checkable
class SharedRenderer(Protocol):
    """A renderer that batches across sessions on a shared frame grid (worker.batcher)."""

    width: int
    height: int

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]: ...

    async def prepared(self) -> None:
        """Return once the avatar is ready to render (it is prepared off the event loop)."""
        ...

    def align(self, now: float) -> float:
        """When tick 0 is due: ticks must fall on the grid the other sessions share."""
        ...

    async def frame(self, index: int, params: FaceParams, until: float, *,
                    onset: bool = False) -> np.ndarray | None:
        """Tick ``index``'s frame, or ``None`` if it is not rendered by ``until``; the first
        frame of speech after silence (``onset``) is rendered at once, not in a batch."""
        ...


class Pipeline:
    def __init__(
        self, transport: Transport, renderer: Renderer, tier: Tier, *, session_id: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.renderer = renderer
        self.tier = tier
        self.session_id = session_id
        self.clock = clock
        self.speech = SpeechQueue(on_playback=transport.playback)
        self.face = FaceDriver(seed=zlib.crc32(session_id.encode()), fps=tier.fps)
        self.frames = 0  # video frames sent
        self.first_frame_at: float | None = None  # monotonic
        self.first_frame = asyncio.Event()
        self.closed_reason: str | None = None
        self.closed = asyncio.Event()
        self.draining = False
        self._idle = True  # the last tick carried no speech
        self._held = False  # the last tick held back the start of speech (see _take)

    # ── Inbound ─────────────────────────────────────────────────────────────────

    async def pump_inbound(self) -> None:
        async for item in self.transport.inbound():
            match item:
                case SpeechIn(samples=samples, segment=segment, synthetic=synthetic):
                    await self.speech.put(samples, segment, observed=not synthetic)
                case Flush(segment=segment):
                    # Queued speech plays out on its own; a numbered segment is reported
                    # finished when its last sample has played.
                    if segment is not None:
                        self.speech.end_segment(segment)
                case Interrupt():
                    dropped = self.speech.interrupt()
                    self.face.reset()  # the next speech starts from a closed mouth
                    log.info("interrupt", extra={"session_id": self.session_id,
                                                 "dropped_ms": dropped * 1000 // 16_000})
                case Refused(code=code, message=message):
                    await self.transport.error(code, message)
                case Closed(reason=reason):
                    self.closed_reason = reason
                    self.closed.set()
                    return

    # ── Outbound ────────────────────────────────────────────────────────────────

    async def run_output(self, stop: asyncio.Event, drain_seconds: float = 2.0) -> None:
        """Tick until ``stop``; then play out queued speech for at most ``drain_seconds``."""
        try:
            await self._ticks(stop, drain_seconds)
        finally:
            self.speech.close()  # what never played is reported interrupted

    async def _ticks(self, stop: asyncio.Event, drain_seconds: float) -> None:
        period = 1.0 / self.tier.fps
        if isinstance(self.renderer, SharedRenderer):
            # The first tick waits for the avatar, so the first frame is the avatar's;
            # speech arriving meanwhile queues (nothing is lost).
            await self.renderer.prepared()
            start = self.renderer.align(self.clock())
        else:
            start = self.clock()
        index = 0
        drain_deadline: float | None = None
        while True:
            if stop.is_set() and drain_deadline is None:
                self.draining = True
                drain_deadline = self.clock() + drain_seconds
            if drain_deadline is not None and (
                self.speech.buffered == 0 or self.clock() >= drain_deadline
            ):
                return
            deadline = start + index * period
            await self._until(deadline, may_lead=drain_deadline is None)
            late = self.clock() - deadline > period
            await self._tick(index, late, deadline + period,
                             may_lead=drain_deadline is None)
            index += 1

    async def _until(self, deadline: float, *, may_lead: bool) -> None:
        """Wait for the tick due at ``deadline``, or less if speech starts after silence.

        Waiting on the grid would show the first lip-synced frame up to a whole frame
        period after its audio arrived. So an idle session runs its tick as soon as a whole
        frame of speech and the face driver's lookahead are queued: speech that comes
        faster than real time, as TTS does. Speech paced in real time (20 ms chunks from a
        live track) never gets that far ahead between two ticks, and must not lead: the
        tick after an early one would find part of a frame and pad the audio with a gap.
        That frame and its audio just leave early, and the next tick is back on the
        grid, so batching across sessions and the A/V pairing are unchanged. (The onset
        frame, early or not, renders on its own: ``FrameClock.frame``.)
        """
        while (delay := deadline - self.clock()) > 0:
            if not (may_lead and self._idle):
                await asyncio.sleep(delay)
                return
            if self._speech_ready():
                metrics.ONSET_TICKS.labels(self.tier.name).inc()
                return
            await self.speech.arrival(delay)

    def _speech_ready(self) -> bool:
        """A whole frame of speech and the face driver's lookahead are queued."""
        return self.speech.buffered >= self.tier.samples_per_frame + self.face.lookahead_samples

    async def _tick(self, index: int, late: bool, until: float, *, may_lead: bool = False,
                    ) -> None:
        """One tick: its audio always goes out; its frame only if rendered by ``until``."""
        chunk, spoken = self._take()
        onset, self._idle = self._idle and spoken > 0, spoken == 0
        params = await self._face(chunk, self.speech.peek(self.face.lookahead_samples))
        frame, given_up = None, False
        if not late and may_lead and self._idle and isinstance(self.renderer, SharedRenderer):
            frame, given_up = await self._silent(index, params, until)
        elif not late:
            frame = await self._render(index, params, until, onset)
        if given_up:
            metrics.ONSET_SKIPS.labels(self.tier.name).inc()
        elif frame is None:
            metrics.LATE_FRAMES.labels(self.tier.name).inc()
        TICKS.record(late=frame is None and not given_up)  # too many: the worker stops claiming
        await self.transport.send(FrameOut(
            index=index, timestamp_ms=index * 1000 // self.tier.fps, frame=frame, audio=chunk,
        ))
        if frame is not None:
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = self.clock()
                self.first_frame.set()

    async def _silent(self, index: int, params: FaceParams, until: float,
                      ) -> tuple[np.ndarray | None, bool]:
        """An idle session's silent frame, and whether it was given up for speech.

        The frame renders in its tick's batch, which takes a good part of a frame period
        at load; speech arriving meanwhile would wait for it before its own (early) tick
        could start. So once a frame of speech and the lookahead are queued, the silent
        frame gets ``ONSET_PATIENCE_S`` more; if it is still rendering then, it is given
        up: its tick's audio goes out without video (the viewer keeps the frame before, a
        face at rest that barely differs) and the speech's first frame follows at once.
        The batch still draws the frame; nobody waits for it.
        """
        render = asyncio.ensure_future(self._render(index, params, until, False))
        try:
            while not render.done():
                if self._speech_ready():
                    done, _ = await asyncio.wait({render}, timeout=ONSET_PATIENCE_S)
                    if not done:
                        return None, True
                    break
                await self.speech.arrival(max(0.0, until - self.clock()), unless=render)
            return render.result(), False
        finally:
            render.cancel()

    def _take(self) -> tuple[np.ndarray, int]:
        """This tick's frame of speech, and how many samples of it were queued speech.

        Speech paced in real time (20 ms chunks from a live track) starts anywhere inside
        a tick: taking the part of a frame that has arrived would pad it with zeros, a gap
        just after the first syllable begins. So an idle session holds a part-frame back
        for one tick (that tick is silence, as it would have been) and then plays the
        speech whole, from the start of a frame, where the mouth opens with it. Holding
        until a frame and a half is queued would also give slack for a late chunk, but it
        measured more latency to the open mouth (``bench/first_frame.py``; figures in
        docs/performance.md), and the first lip-synced frame must come within 60 ms.
        """
        n = self.tier.samples_per_frame
        if self._idle and not self._held and 0 < self.speech.buffered < n:
            self._held = True
            return np.zeros(n, dtype=np.int16), 0
        self._held = False
        return self.speech.take(n)

    async def _face(self, chunk: np.ndarray, lookahead: np.ndarray) -> FaceParams:
        """The frame's face. Sessions whose renderer batches across sessions also share
        one lip-sync call per tick (``SpeechBatch``); a renderer of its own (the mock
        pattern, tests) steps the model alone, without leaving the tick."""
        if isinstance(self.renderer, SharedRenderer):
            return await speech_batch(self.tier.fps).step(self.face, chunk, lookahead)
        return self.face.step(chunk, lookahead)

    async def _render(
        self, index: int, params: FaceParams, until: float, onset: bool,
    ) -> np.ndarray | None:
        if isinstance(self.renderer, SharedRenderer):
            return await self.renderer.frame(index, params, until, onset=onset)
        started = time.perf_counter()
        frame = self.renderer.render([params])[0]
        metrics.RENDER_SECONDS.labels(self.tier.name).observe(time.perf_counter() - started)
        return frame

    def billable_seconds(self) -> int:
        """Whole seconds since the first frame."""
        if self.first_frame_at is None:
            return 0
        return int(self.clock() - self.first_frame_at)
