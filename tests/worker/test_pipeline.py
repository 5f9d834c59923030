"""The session pipeline through the transport port: speech in, synchronized frames out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from protoface.domain.tiers import TIERS
from protoface.worker.face.features import FaceDriver, FaceParams
from protoface.worker.pipeline import Pipeline
from protoface.worker.render.mock import MockRenderer
from protoface.worker.transports.port import Closed, Interrupt, Refused, SpeechIn
from tests import speech
from tests.worker import speechlike
from tests.worker.memory_transport import MemoryTransport


def mouth_darkness(frame: np.ndarray, renderer: MockRenderer) -> int:
    top, bottom, left, right = renderer.mouth_box
    region = frame[top:bottom, left:right]
    return int((region.sum(axis=2) < 200).sum())


def test_mock_mouth_is_closed_in_silence_and_open_with_speech() -> None:
    renderer = MockRenderer(256, 256)
    closed, half, wide = renderer.render(
        [FaceParams(0.0, False), FaceParams(0.5, True), FaceParams(1.0, True)])
    assert mouth_darkness(closed, renderer) == 0
    assert 0 < mouth_darkness(half, renderer) < mouth_darkness(wide, renderer)


def test_the_same_seed_renders_the_same_frames() -> None:
    params = [FaceParams(x / 10, True) for x in range(10)]
    assert all(
        np.array_equal(a, b) for a, b in zip(
            MockRenderer(256, 256, seed=7).render(params),
            MockRenderer(256, 256, seed=7).render(params), strict=True)
    )


def test_the_mouth_opens_with_speech_and_relaxes_closed_after_it() -> None:
    mouth = FaceDriver(seed=0, fps=25)
    utterance = speech.load("greeting.wav")[8_000:40_000]  # speech from its first word
    opened = [mouth.step(utterance[i : i + 640], utterance[i + 640 : i + 1_280]).mouth_open
              for i in range(0, utterance.size - 640, 640)]
    assert max(opened[:10]) > 0.2  # open within the first 400 ms of speech
    closing = [mouth.step(np.zeros(640, np.int16)).mouth_open for _ in range(30)]
    assert closing[-1] < 0.05  # silence relaxes to a closed mouth


class RecordingRenderer(MockRenderer):
    """The mock tier's renderer, keeping the face parameters of every frame it draws."""

    def __init__(self) -> None:
        super().__init__(256, 256)
        self.drawn: list[FaceParams] = []

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]:
        self.drawn.extend(batch)
        return super().render(batch)


async def run_pipeline(transport: MemoryTransport, seconds: float,
                       renderer: MockRenderer | None = None) -> Pipeline:
    renderer = renderer or MockRenderer(256, 256)
    pipeline = Pipeline(transport, renderer, TIERS["mock"])
    stop = asyncio.Event()
    pump = asyncio.create_task(pipeline.pump_inbound())
    output = asyncio.create_task(pipeline.run_output(stop, drain_seconds=0.2))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(output, 2)
    await transport.incoming.put(Closed())
    await asyncio.wait_for(pump, 2)
    return pipeline


async def test_speech_plays_back_in_order_with_one_frame_per_tick() -> None:
    transport = MemoryTransport()
    utterance = speech.load("numbers.wav")[:16_000]
    await transport.incoming.put(SpeechIn(utterance))
    pipeline = await run_pipeline(transport, 1.4)
    played = np.concatenate([f.audio for f in transport.frames])
    start = int(np.flatnonzero(played)[0])
    first = int(np.flatnonzero(utterance)[0])
    assert np.array_equal(played[start : start + 12_000], utterance[first : first + 12_000])
    assert all(f.audio.size == 640 for f in transport.frames)
    stamps = [f.timestamp_ms for f in transport.frames]
    assert stamps == [40 * i for i in range(len(stamps))]
    assert pipeline.frames == sum(f.frame is not None for f in transport.frames)


async def test_the_mouth_moves_with_speech_and_rests_in_silence() -> None:
    transport = MemoryTransport()
    silence = np.zeros(8_000, np.int16)
    await transport.incoming.put(SpeechIn(np.concatenate([silence, speech.load()[8_000:24_000]])))
    await run_pipeline(transport, 1.2)
    renderer = MockRenderer(256, 256)
    dark = [mouth_darkness(f.frame, renderer) for f in transport.frames if f.frame is not None]
    assert max(dark[:10]) == 0  # the first 400 ms are silence: mouth closed
    assert max(dark[12:]) > 0  # speech opens it


async def test_interrupt_drops_queued_speech_at_the_next_tick() -> None:
    transport = MemoryTransport()
    await transport.incoming.put(SpeechIn(np.full(16_000 * 5, 5000, np.int16)))

    async def interrupt_soon() -> None:
        await asyncio.sleep(0.3)
        await transport.incoming.put(Interrupt())

    task = asyncio.create_task(interrupt_soon())
    await run_pipeline(transport, 0.8)
    await task
    spoken = [bool(f.audio.any()) for f in transport.frames]
    last_spoken = max(i for i, s in enumerate(spoken) if s)
    assert not any(spoken[last_spoken + 1 :])
    assert last_spoken <= 0.3 / 0.04 + 2  # at most one tick after the interrupt


async def test_rejected_input_is_answered_with_an_error_and_the_session_goes_on() -> None:
    transport = MemoryTransport()
    await transport.incoming.put(Refused("invalid_record", "record too short"))
    await transport.incoming.put(SpeechIn(np.full(1600, 3000, np.int16)))
    await run_pipeline(transport, 0.3)
    assert transport.errors == [("invalid_record", "record too short")]
    assert any(f.audio.any() for f in transport.frames)


async def test_the_mouth_starts_to_move_one_frame_before_the_sound_it_sees_ahead() -> None:
    transport, renderer = MemoryTransport(), RecordingRenderer()
    vowel = speechlike.vowel("ah", 0.4)
    await transport.incoming.put(SpeechIn(np.concatenate([np.zeros(6_400, np.int16), vowel])))
    await run_pipeline(transport, 1.0, renderer)
    sound = next(i for i, f in enumerate(transport.frames) if f.audio.any())
    assert not transport.frames[sound - 1].audio.any()
    moving = [max(p.mouth_open, p.lip_press, abs(p.lip_round)) for p in renderer.drawn]
    # The queue's lookahead reached the driver: the frame before the sound already moves
    # the mouth toward it (the model shapes the lips ahead of an onset) …
    assert moving[sound - 1] > 0.1
    # … and no earlier frame does.
    assert max(moving[: sound - 1]) < 0.05


async def test_speech_paced_in_real_time_after_silence_plays_without_a_gap() -> None:
    transport = MemoryTransport()
    utterance = np.full(16_000 // 2, 4_000, np.int16)  # 500 ms, no zero sample in it

    async def speak_in_real_time() -> None:
        while len(transport.frames) < 5:  # silence first, then a tick goes out…
            await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        begin = loop.time() + 0.025  # …and 20 ms chunks start in its second half
        for n, start in enumerate(range(0, utterance.size, 320)):
            await asyncio.sleep(max(0.0, begin + n * 0.02 - loop.time()))
            await transport.incoming.put(SpeechIn(utterance[start : start + 320]))

    talking = asyncio.create_task(speak_in_real_time())
    await run_pipeline(transport, 1.2)
    await talking
    # Given an idle session, when speech arrives in real time and its start falls inside a
    # tick, then that tick stays silent rather than padding the speech's first part with
    # zeros: the utterance plays whole from the start of a frame, its first frame full.
    played = np.concatenate([f.audio for f in transport.frames])
    spoken = np.flatnonzero(played)
    assert spoken.size == utterance.size
    assert spoken[0] % 640 == 0
    assert played[spoken[0] : spoken[0] + 640].all()
    # (Later in the utterance a chunk sent late — this test's own sends can be, on a
    # loaded machine — may still leave one tick short: at most one such gap.)
    assert spoken[-1] - spoken[0] + 1 - utterance.size <= 320
