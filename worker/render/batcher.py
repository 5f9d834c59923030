"""Batching across sessions: one render call per tick for every session of a tier.

A :class:`FrameClock` is the worker's frame grid for one tier: tick ``k`` is due at
``epoch + k / fps``. A session's pipeline starts on that grid (:meth:`BatchedRenderer.align`),
so every session of the tier wakes for the same tick together and submits its FaceParams;
the clock renders them all in one call (sessions with different avatars stacked in one
batch) on the worker's render thread (torch releases the GIL, the event loop keeps
pacing), and hands each pipeline its frame.

A tick's batch is rendered as soon as as many sessions have submitted as did for the
previous tick, or once no session has submitted for ``grace`` seconds, and at the latest
``max_wait`` after its first submission (a session that joins or leaves costs one such
wait). A session's first frame of speech after silence (its
*onset* frame, often asked for ahead of its tick, see ``worker.pipeline``) renders at
once on its own, on the worker's *onset thread*: it is the frame a listener waits for,
and it must not wait for a batch or behind one that is rendering (onsets are rare: once
per utterance). While a render is
running, batches that fall due wait; when it ends, only the newest waiting batch is
rendered and older ones are dropped (their frames come back ``None``): a slow render
drops frames, it never builds a backlog that would hold back the sessions' audio.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import numpy as np

from protoface.worker import metrics
from protoface.worker.face.features import FaceParams

log = logging.getLogger("protoface.worker.batcher")

Item = TypeVar("Item")
RenderMany = Callable[[Sequence[tuple[Item, FaceParams]]], list[np.ndarray]]

_render_thread: Executor | None = None
_onset_thread: Executor | None = None


def render_thread() -> Executor:
    """The worker's one render thread: batches of every tier run there, one at a time."""
    global _render_thread
    if _render_thread is None:
        _render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    return _render_thread


def onset_thread() -> Executor:
    """The worker's thread for onset frames (the first frame of speech after silence)."""
    global _onset_thread
    if _onset_thread is None:
        _onset_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onset")
    return _onset_thread


@dataclass
class _Batch(Generic[Item]):
    tick: int
    entries: list[tuple[Item, FaceParams, asyncio.Future[np.ndarray | None]]] = field(
        default_factory=list)
    opened: float = 0.0  # when its first frame was submitted
    timer: asyncio.TimerHandle | None = None


class FrameClock(Generic[Item]):
    """One tier's shared frame grid and batched render step."""

    def __init__(
        self, fps: int, render_many: RenderMany[Item], *, name: str = "", grace: float = 0.004,
        max_wait: float = 0.012, executor: Executor | None = None,
        onset_executor: Executor | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period = 1.0 / fps
        self.render_many = render_many
        self.name = name
        self.grace = grace
        self.max_wait = max_wait
        self.executor = executor
        self.onset_executor = onset_executor
        self.clock = clock
        self.epoch = clock()
        self.renders = 0  # batched render calls made
        self.dropped = 0  # frames of batches skipped because a render ran late
        self._open: dict[int, _Batch[Item]] = {}
        self._due: list[_Batch[Item]] = []
        self._submitted: dict[int, int] = {}  # frames asked for, per tick
        self._running: asyncio.Task[None] | None = None
        self._onsets: set[asyncio.Task[None]] = set()  # onset frames rendering alone

    def next_tick(self, now: float) -> int:
        """The first tick due at or after ``now``."""
        return max(0, math.ceil((now - self.epoch) / self.period - 1e-9))

    def due_at(self, tick: int) -> float:
        return self.epoch + tick * self.period

    async def frame(
        self, tick: int, item: Item, params: FaceParams, until: float, *, onset: bool = False,
    ) -> np.ndarray | None:
        """This session's frame for ``tick``, or ``None`` if it is not ready by ``until``;
        an ``onset`` frame is rendered at once, on its own."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray | None] = loop.create_future()
        self._submitted[tick] = self._submitted.get(tick, 0) + 1
        if onset:
            alone = _Batch(tick, [(item, params, future)])
            task = loop.create_task(self._render(alone, self.onset_executor or onset_thread()))
            self._onsets.add(task)
            task.add_done_callback(self._onsets.discard)
        else:
            batch = self._open.get(tick)
            if batch is None:
                batch = self._open[tick] = _Batch(tick, opened=self.clock())
            batch.entries.append((item, params, future))
            expected = self._submitted.get(tick - 1, 0)  # the sessions of the tick before
            if expected and self._submitted[tick] >= expected:
                self._close(tick)
            else:
                self._wait_for_more(batch, loop)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, until - self.clock()))
        except TimeoutError:
            return None

    def _wait_for_more(self, batch: _Batch[Item], loop: asyncio.AbstractEventLoop) -> None:
        """Close ``batch`` once no session has submitted for ``grace`` seconds, and no
        later than ``max_wait`` after it opened.

        The sessions of a tick do not all wake in one pass of the event loop: uvloop's
        timers fire on whole milliseconds, so they wake in groups a millisecond apart, and
        each runs its face driver before it submits. A grace counted from the
        first submission closed a batch of 20 lite sessions before the last groups
        submitted; they made a second batch for the same tick, which waited behind the
        first and was dropped as stale (frames lost at lite × 20; docs/performance.md).
        """
        if batch.timer is not None:
            batch.timer.cancel()
        wait = min(self.grace, batch.opened + self.max_wait - self.clock())
        batch.timer = loop.call_later(max(0.0, wait), self._close, batch.tick)

    def _close(self, tick: int) -> None:
        batch = self._open.pop(tick, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        for old in [t for t in self._submitted if t < tick - 1]:
            del self._submitted[old]
        self._due.append(batch)
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._render_due())

    async def _render_due(self) -> None:
        while self._due:
            batch, stale = self._due[-1], self._due[:-1]
            self._due.clear()
            for old in stale:  # fell due while a render ran: too late to show
                self.dropped += len(old.entries)
                _resolve(old, None)
            await self._render(batch, self.executor or render_thread())

    async def _render(self, batch: _Batch[Item], executor: Executor) -> None:
        items = [(item, params) for item, params, _ in batch.entries]
        started = time.perf_counter()
        try:
            frames = await asyncio.get_running_loop().run_in_executor(
                executor, self.render_many, items)
        except Exception:
            log.exception("batched render failed", extra={"quality": self.name,
                                                          "batch": len(items)})
            _resolve(batch, None)
            return
        self.renders += 1
        elapsed = time.perf_counter() - started
        metrics.RENDER_BATCH.labels(self.name).observe(len(items))
        metrics.RENDER_SECONDS.labels(self.name).observe(elapsed / len(items))
        for (_, _, future), frame in zip(batch.entries, frames, strict=True):
            if not future.done():
                future.set_result(frame)


def _resolve(batch: _Batch[Item], value: None) -> None:
    for _, _, future in batch.entries:
        if not future.done():
            future.set_result(value)


class BatchedRenderer(Generic[Item]):
    """One session's handle on its tier's :class:`FrameClock` (the pipeline's renderer).

    ``item`` (the prepared avatar) may still be being prepared off the event loop: the
    pipeline awaits :meth:`prepared` before its first tick (a tick that comes before it
    is ready gets no frame; its audio still goes out).
    """

    def __init__(self, clock: FrameClock[Item], item: Item | asyncio.Future[Item], width: int,
                 height: int, render_one: RenderMany[Item]) -> None:
        self.frame_clock = clock
        self._item = item
        self.width = width
        self.height = height
        self._render_one = render_one
        self._first_tick = 0

    async def prepared(self) -> None:
        if isinstance(self._item, asyncio.Future):
            self._item = await self._item

    def align(self, now: float) -> float:
        """When this session's tick 0 is due: the next tick of the shared grid."""
        self._first_tick = self.frame_clock.next_tick(now)
        return self.frame_clock.due_at(self._first_tick)

    async def frame(self, index: int, params: FaceParams, until: float, *,
                    onset: bool = False) -> np.ndarray | None:
        item = self._item
        if isinstance(item, asyncio.Future):
            try:
                item = await asyncio.wait_for(
                    asyncio.shield(item), max(0.0, until - self.frame_clock.clock()))
            except TimeoutError:
                return None  # still preparing the avatar
            self._item = item
        ready = cast(Item, item)  # a Future was awaited above
        return await self.frame_clock.frame(self._first_tick + index, ready, params, until,
                                            onset=onset)

    @property
    def item(self) -> Item:
        if isinstance(self._item, asyncio.Future):
            return self._item.result()  # raises while the avatar is still being prepared
        return self._item

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]:
        """Unbatched rendering (the ``Renderer`` protocol): for previews and tests."""
        return self._render_one([(self.item, p) for p in batch])


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, FrameClock[object]]] = (
    weakref.WeakKeyDictionary())


def frame_clock(name: str, fps: int, render_many: RenderMany[Item]) -> FrameClock[Item]:
    """The running loop's (the worker's) frame clock for tier ``name``."""
    per_loop = _clocks.setdefault(asyncio.get_running_loop(), {})
    clock = per_loop.get(name)
    if clock is None:
        clock = per_loop[name] = FrameClock(fps, render_many, name=name)  # type: ignore[arg-type]
    return clock  # type: ignore[return-value]

