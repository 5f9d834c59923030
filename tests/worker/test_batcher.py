"""Batching across sessions: one render call per tick for all sessions of a tier."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from protoface.domain.session import PipecatTransport, Session
from protoface.domain.tiers import TIERS
from protoface.worker import metrics
from protoface.worker.avatars import AvatarNotAvailable, renderer_for
from protoface.worker.face.features import FaceParams
from protoface.worker.pipeline import ONSET_PATIENCE_S, Pipeline
from protoface.worker.render.batcher import BatchedRenderer, FrameClock
from protoface.worker.render.mock import MockRenderer
from protoface.worker.render.renderer import TierModel
from protoface.worker.render.rig import stock_asset
from protoface.worker.transports.port import Closed, FrameOut, SpeechIn
from tests import speech
from tests.worker.memory_transport import MemoryTransport

TIER = TIERS["lite"]


class Recorder:
    """Renders with the mock renderer of each session, and records every call's batch."""

    def __init__(self, delay: float = 0.0, every: int = 1) -> None:
        self.delay = delay
        self.every = every
        self.batches: list[int] = []

    def __call__(self, items: Sequence[tuple[MockRenderer, FaceParams]]) -> list[np.ndarray]:
        self.batches.append(len(items))
        if len(self.batches) % self.every == 0:
            time.sleep(self.delay)  # on the render thread: the event loop keeps pacing
        return [r.render([p])[0] for r, p in items]


def session(clock: FrameClock[MockRenderer], render: Recorder) -> BatchedRenderer[MockRenderer]:
    return BatchedRenderer(clock, MockRenderer(256, 256), 256, 256, render)


async def run(pipelines: list[tuple[Pipeline, MemoryTransport]], seconds: float) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.pump_inbound()) for p, _ in pipelines]
    outputs = [asyncio.create_task(p.run_output(stop, drain_seconds=0.0)) for p, _ in pipelines]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*outputs), 3)
    for _, transport in pipelines:
        await transport.incoming.put(Closed())
    await asyncio.wait_for(asyncio.gather(*tasks), 3)


async def test_two_sessions_share_one_render_call_per_tick() -> None:
    render = Recorder()
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, name="lite")
    pipelines = [(Pipeline(t, session(clock, render), TIER), t)
                 for t in (MemoryTransport(), MemoryTransport())]
    await run(pipelines, 1.0)
    # Given two sessions on one tier, when they run for 25 ticks, then (after the first
    # tick, which waits out its grace) each tick is one call rendering both frames.
    assert clock.renders == len(render.batches)
    assert render.batches[1:-1] and set(render.batches[1:-1]) == {2}
    sent = [sum(f.frame is not None for f in t.frames) for _, t in pipelines]
    assert min(sent) >= 20
    assert clock.renders <= max(len(t.frames) for _, t in pipelines) + 1


async def test_a_slow_render_drops_frames_but_the_audio_stays_continuous() -> None:
    render = Recorder(delay=0.1, every=3)  # every third batch takes 2.5 frame periods
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, name="lite")
    transport = MemoryTransport()
    utterance = speech.load("numbers.wav")[:16_000]
    await transport.incoming.put(SpeechIn(utterance))
    pipeline = Pipeline(transport, session(clock, render), TIER)
    await run([(pipeline, transport)], 1.2)
    ticks = transport.frames
    assert [f.timestamp_ms for f in ticks] == [40 * i for i in range(len(ticks))]
    assert len(ticks) >= 25  # the pacer kept wall-clock time
    shown = sum(f.frame is not None for f in ticks)
    assert len(ticks) / 3 < shown < len(ticks) - 5  # slow ticks' frames dropped
    played = np.concatenate([f.audio for f in ticks])
    first = int(np.flatnonzero(utterance)[0])
    start = int(np.flatnonzero(played)[0])
    n = min(len(played) - start, 12_000)
    assert np.array_equal(played[start : start + n], utterance[first : first + n])
    assert len(render.batches) < len(ticks)  # no backlog: stale batches are skipped


async def test_sessions_of_different_avatars_render_in_one_torch_batch() -> None:
    model = TierModel(TIER)
    clock = FrameClock(TIER.fps, model.render_many, name="lite")
    transports = [MemoryTransport() for _ in range(3)]
    for t in transports:
        await t.incoming.put(SpeechIn(speech.load()[8_000:24_000]))
    pipelines = [
        (Pipeline(t, BatchedRenderer(clock, model.avatar(stock_asset(a)), 256, 256,
                                    model.render_many), TIER), t)
        for t, a in zip(transports, ("av_stock_001", "av_stock_002", "av_stock_003"),
                        strict=True)]
    await run(pipelines, 1.0)
    for t in transports:
        frames = [f.frame for f in t.frames if f.frame is not None]
        assert len(frames) >= 15 and frames[0].shape == (256, 256, 3)
        assert any(not np.array_equal(frames[0], f) for f in frames)  # the mouth moves
    assert clock.renders <= max(len(t.frames) for t in transports) + 2


def state_of(quality: str, avatar_id: str = "av_stock_001") -> Session:
    return Session(
        id="sess_test", org_id="org_test", avatar_id=avatar_id,
        quality=quality,  # type: ignore[arg-type]
        idle_timeout_seconds=30, max_duration_seconds=60, metadata={},
        transport=PipecatTransport(), status="running", created_at=datetime.now(UTC),
    )


async def test_a_worker_renders_lite_sessions_with_the_model_on_the_tier_clock() -> None:
    first = renderer_for(state_of("lite"))
    second = renderer_for(state_of("lite", "av_stock_003"))
    assert isinstance(first, BatchedRenderer) and isinstance(second, BatchedRenderer)
    assert first.frame_clock is second.frame_clock  # one batch per tick for the tier
    assert (first.width, first.height) == (256, 256)
    assert isinstance(renderer_for(state_of("mock")), MockRenderer)
    with pytest.raises(AvatarNotAvailable):
        renderer_for(state_of("lite", "av_nope"))


async def test_the_first_tick_waits_for_the_avatar_and_no_speech_is_lost() -> None:
    render = Recorder()
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, name="lite")
    preparing: asyncio.Future[MockRenderer] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.4, preparing.set_result, MockRenderer(256, 256))
    transport = MemoryTransport()
    utterance = speech.load("numbers.wav")[:8_000]
    await transport.incoming.put(SpeechIn(utterance))
    pipeline = Pipeline(transport, BatchedRenderer(clock, preparing, 256, 256, render), TIER)
    await run([(pipeline, transport)], 1.2)
    ticks = transport.frames
    assert 12 <= len(ticks) <= 22  # ~0.8 s of ticks: none while the avatar was prepared
    assert ticks[0].frame is not None  # the first tick already shows the avatar
    played = np.concatenate([f.audio for f in ticks])
    first = int(np.flatnonzero(utterance)[0])
    start = int(np.flatnonzero(played)[0])
    assert np.array_equal(played[start : start + 6_000], utterance[first : first + 6_000])


class TimedTransport(MemoryTransport):
    """Records when each frame was sent, on the clock the FrameClock uses."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: list[float] = []

    async def send(self, frame: FrameOut) -> None:
        self.sent_at.append(time.monotonic())
        await super().send(frame)


async def speak_after_a_tick(transport: TimedTransport, samples: np.ndarray,
                             phase: float) -> float:
    """Put ``samples`` ``phase`` seconds after the session's next tick; returns when."""
    sent = len(transport.frames)
    while len(transport.frames) == sent:
        await asyncio.sleep(0.001)
    await asyncio.sleep(phase)
    at = time.monotonic()
    await transport.incoming.put(SpeechIn(samples))
    return at


async def onset_run(samples: np.ndarray) -> tuple[TimedTransport, TimedTransport, float,
                                                  FrameClock[MockRenderer], Recorder]:
    """Two sessions on one grid; the second one speaks 5 ms after one of its ticks."""
    render = Recorder()
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, name="lite")
    quiet, speaker = TimedTransport(), TimedTransport()
    pipelines = [(Pipeline(t, session(clock, render), TIER), t) for t in (quiet, speaker)]

    async def later() -> float:
        await asyncio.sleep(0.3)  # silence first: both sessions idle on the grid
        return await speak_after_a_tick(speaker, samples, 0.005)

    spoke = asyncio.create_task(later())
    await run(pipelines, 1.0)
    return quiet, speaker, await spoke, clock, render


def grid_offsets(clock: FrameClock[MockRenderer], transport: TimedTransport) -> list[int]:
    """For each frame ``i``, the grid tick in whose period it went out, less ``i``.

    It stays the same from frame to frame while a session keeps to the grid, whenever
    within each period a busy machine gets to send the frame; a frame that leaves a tick
    early, as an onset frame does, has it one lower.
    """
    return [int((at - clock.epoch) // clock.period) - i
            for i, at in enumerate(transport.sent_at)]


async def test_speech_after_silence_is_shown_at_once_not_at_the_next_tick() -> None:
    burst = np.full(3_200, 6_000, np.int16)  # 200 ms: five frames' worth
    quiet, speaker, _, clock, render = await onset_run(burst)
    # Given an idle session on a 40 ms grid, when 200 ms of speech reaches it 5 ms after
    # a tick, then the frame carrying it goes out at once, in the period of the silent
    # frame before it (the grid would wait ~35 ms for the next tick)…
    first = next(i for i, f in enumerate(speaker.frames) if f.audio.any())
    assert speaker.frames[first].frame is not None
    offsets = grid_offsets(clock, speaker)
    assert offsets[first] == offsets[first - 1] - 1
    # …the next tick is back on the grid, and the audio is the burst, whole and in order.
    assert offsets[first + 1] == offsets[first - 1]
    played = np.concatenate([f.audio for f in speaker.frames])
    spoken = np.flatnonzero(played)
    assert spoken.size == burst.size and spoken[-1] - spoken[0] == burst.size - 1
    stamps = [f.timestamp_ms for f in speaker.frames]
    assert stamps == [40 * i for i in range(len(stamps))]
    # The other session never left the grid, and the two still share one render per tick.
    assert len(set(grid_offsets(clock, quiet)[1:])) == 1
    assert render.batches[-6:-1].count(2) >= 3


async def test_speech_no_faster_than_real_time_waits_for_the_tick() -> None:
    _, speaker, _, clock, _ = await onset_run(np.full(640, 6_000, np.int16))  # 40 ms
    # Given an idle session, when speech arrives no faster than real time (one frame's
    # worth, no lookahead), then it goes out on the next tick: leading would leave the
    # tick after it short of speech, and pad the audio with a gap.
    first = next(i for i, f in enumerate(speaker.frames) if f.audio.any())
    offsets = grid_offsets(clock, speaker)
    assert offsets[first] == offsets[first - 1]


class SlowBatches(BatchedRenderer[MockRenderer]):
    """A tick's batch takes 30 ms (most of a 40 ms period); a frame rendered alone, at once."""

    async def frame(self, index: int, params: FaceParams, until: float, *,
                    onset: bool = False) -> np.ndarray | None:
        if not onset:
            await asyncio.sleep(0.03)
        return self.item.render([params])[0]


async def test_speech_arriving_while_a_silent_frame_renders_does_not_wait_for_it() -> None:
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, Recorder(), name="lite")
    speaker = TimedTransport()
    pipeline = Pipeline(speaker, SlowBatches(clock, MockRenderer(256, 256), 256, 256, Recorder()),
                        TIER)
    late = metrics.LATE_FRAMES.labels(TIER.name)._value.get()
    skipped = metrics.ONSET_SKIPS.labels(TIER.name)._value.get()

    async def speak() -> float:
        await asyncio.sleep(0.3)  # silence first: the session idle on the grid
        tick = clock.next_tick(clock.clock())  # 3 ms into a tick: its silent frame renders
        await asyncio.sleep(clock.due_at(tick) + 0.003 - clock.clock())
        at = time.monotonic()
        await speaker.incoming.put(SpeechIn(np.full(3_200, 6_000, np.int16)))
        return at

    spoke = asyncio.create_task(speak())
    await run([(pipeline, speaker)], 0.8)
    at = await spoke
    # Given an idle session whose silent frame is rendering in a slow batch, when speech
    # arrives, then that silent frame is given up after ONSET_PATIENCE_S (its tick's audio
    # goes out without video, not counted late) and the speech's first frame goes out,
    # rendered alone, instead of after the batch and a tick of its own (~40 ms).
    first = next(i for i, f in enumerate(speaker.frames) if f.audio.any())
    assert speaker.frames[first].frame is not None
    assert speaker.sent_at[first] - at < ONSET_PATIENCE_S + 0.015
    assert speaker.frames[first - 1].frame is None
    assert not speaker.frames[first - 1].audio.any()
    assert metrics.ONSET_SKIPS.labels(TIER.name)._value.get() == skipped + 1
    assert metrics.LATE_FRAMES.labels(TIER.name)._value.get() == late
    # Every other frame is shown, and the stamps stay on the grid.
    assert sum(f.frame is None for f in speaker.frames) == 1
    assert [f.timestamp_ms for f in speaker.frames] == [40 * i for i in range(len(speaker.frames))]


async def test_a_silent_frame_done_soon_after_speech_arrives_is_still_shown() -> None:
    class Quick(BatchedRenderer[MockRenderer]):
        async def frame(self, index: int, params: FaceParams, until: float, *,
                        onset: bool = False) -> np.ndarray | None:
            if not onset:
                await asyncio.sleep(0.006)  # a batch of a few sessions
            return self.item.render([params])[0]

    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, Recorder(), name="lite")
    speaker = TimedTransport()
    pipeline = Pipeline(speaker, Quick(clock, MockRenderer(256, 256), 256, 256, Recorder()),
                        TIER)

    async def speak() -> None:
        await asyncio.sleep(0.3)
        tick = clock.next_tick(clock.clock())
        await asyncio.sleep(clock.due_at(tick) + 0.002 - clock.clock())
        await speaker.incoming.put(SpeechIn(np.full(3_200, 6_000, np.int16)))

    spoke = asyncio.create_task(speak())
    await run([(pipeline, speaker)], 0.8)
    await spoke
    # Given a silent frame that is done within ONSET_PATIENCE_S of speech arriving, then
    # it is shown: every tick carries its video frame.
    assert all(f.frame is not None for f in speaker.frames)


async def test_an_onset_frame_does_not_wait_behind_a_slow_render() -> None:
    slow = MockRenderer(256, 256)

    def render(items: Sequence[tuple[MockRenderer, FaceParams]]) -> list[np.ndarray]:
        if any(r is slow for r, _ in items):
            time.sleep(0.15)  # on the render thread: overruns its tick by far
        return [r.render([p])[0] for r, p in items]

    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, name="lite")
    params = FaceParams(mouth_open=0.5, speaking=True)
    until = clock.clock() + 5
    tick = clock.next_tick(clock.clock()) + 1
    await asyncio.sleep(max(0.0, clock.due_at(tick) - clock.clock()))
    regular = asyncio.create_task(clock.frame(tick, slow, params, until))
    await asyncio.sleep(0.01)  # that batch is rendering now
    # Given a tick's batch still rendering, when a session whose speech just started asks
    # for its onset frame, then it is rendered at once, not after that batch.
    asked = time.monotonic()
    onset = await clock.frame(tick + 1, MockRenderer(256, 256), params, until, onset=True)
    assert onset is not None and time.monotonic() - asked < 0.08
    assert not regular.done()
    assert await regular is not None


async def submit_spread(clock: FrameClock[MockRenderer], sessions: int,
                        gap: float) -> list[np.ndarray | None]:
    """``sessions`` frames of one tick, submitted ``gap`` seconds apart (as sessions do that
    wake in different passes of the event loop, each running its face driver first)."""
    frames = []
    for _ in range(sessions):
        frames.append(asyncio.create_task(clock.frame(
            7, MockRenderer(256, 256), FaceParams(0.5, True), clock.clock() + 5.0)))
        await asyncio.sleep(gap)
    return await asyncio.gather(*frames)


async def test_sessions_that_wake_a_little_apart_still_share_one_render_call() -> None:
    # Given a tick whose sessions submit 10 ms apart, over far longer than the grace,
    render = Recorder()
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, grace=0.05, max_wait=1.0)
    frames = await submit_spread(clock, sessions=6, gap=0.01)
    # then no gap reached the grace: they are one batch, every frame rendered.
    assert render.batches == [6]
    assert all(f is not None for f in frames)


async def test_a_batch_that_keeps_growing_closes_by_its_longest_wait() -> None:
    # Given submissions that never pause for the grace,
    render = Recorder()
    clock: FrameClock[MockRenderer] = FrameClock(TIER.fps, render, grace=0.05, max_wait=0.08)
    frames = await submit_spread(clock, sessions=16, gap=0.01)
    # then the batch was closed at its longest wait, and the rest rendered after it.
    assert len(render.batches) >= 2 and render.batches[0] < 16
    assert sum(render.batches) == 16
    assert all(f is not None for f in frames)
