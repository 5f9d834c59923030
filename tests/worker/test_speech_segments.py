"""Segment accounting in the speech queue: the pipeline's hook for transports whose
sender wants to know when each segment started and how much of it played."""

from __future__ import annotations

import asyncio

import numpy as np

from protoface.worker.audio import SpeechQueue
from protoface.worker.transports.port import Flush, Interrupt, Playback, SpeechIn
from tests.worker.memory_transport import MemoryTransport
from tests.worker.test_pipeline import run_pipeline


def speech(n: int, value: int = 1000) -> np.ndarray:
    return np.full(n, value, np.int16)


def recording_queue() -> tuple[SpeechQueue, list[Playback]]:
    reports: list[Playback] = []
    return SpeechQueue(on_playback=reports.append), reports


async def test_a_segment_is_reported_started_at_its_first_sample_and_finished_at_its_last() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(1000), "s1")
    queue.end_segment("s1")
    assert reports == []  # queued is not played
    queue.take(640)
    assert reports == [Playback("s1", finished=False)]
    queue.take(640)  # the last 360 samples go out with this tick
    assert reports[1:] == [Playback("s1", finished=True, position=1000 / 16_000)]


async def test_back_to_back_segments_are_reported_in_order_within_one_tick() -> None:
    queue, reports = recording_queue()
    for name, n in (("a", 300), ("b", 200)):
        await queue.put(speech(n), name)
        queue.end_segment(name)
    queue.take(640)
    assert [(r.segment, r.finished, r.position) for r in reports] == [
        ("a", False, 0.0), ("a", True, 300 / 16_000), ("b", False, 0.0), ("b", True, 200 / 16_000),
    ]


async def test_a_segment_whose_end_arrives_after_it_played_out_finishes_at_the_next_tick() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(640), "s1")
    queue.take(640)
    assert [r.finished for r in reports] == [False]
    queue.end_segment("s1")
    queue.take(640)
    assert reports[-1] == Playback("s1", finished=True, position=0.04)


async def test_an_interrupt_reports_where_each_unfinished_segment_stopped() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(16_000), "playing")
    queue.end_segment("playing")
    await queue.put(speech(8_000), "waiting")
    queue.take(640)
    queue.take(640)
    assert queue.interrupt() == 16_000 + 8_000 - 1280
    assert reports[1:] == [
        Playback("playing", finished=True, position=0.08, interrupted=True),
        Playback("waiting", finished=True, position=0.0, interrupted=True),
    ]


async def test_speech_arriving_for_an_interrupted_segment_is_not_played() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(640), "s1")
    queue.interrupt()
    await queue.put(speech(640), "s1")
    queue.end_segment("s1")
    _, spoken = queue.take(640)
    assert spoken == 0
    assert len([r for r in reports if r.finished]) == 1  # one finish per segment, ever


async def test_a_segment_registered_before_any_audio_is_still_finished_by_an_interrupt() -> None:
    queue, reports = recording_queue()
    await queue.put(np.zeros(0, np.int16), "s1")
    queue.interrupt()
    assert reports == [Playback("s1", finished=True, position=0.0, interrupted=True)]


async def test_closing_finishes_what_played_out_and_interrupts_the_rest() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(640), "done")
    queue.end_segment("done")
    await queue.put(speech(640), "cut")
    queue.take(640)  # "done" played out; its end marker is the queue's head
    queue.close()
    finished = [(r.segment, r.interrupted) for r in reports if r.finished]
    assert finished == [("done", False), ("cut", True)]


async def test_speech_without_segments_reports_nothing() -> None:
    queue, reports = recording_queue()
    await queue.put(speech(1000))
    queue.take(640)
    queue.interrupt()
    queue.close()
    assert reports == []


async def test_synthetic_speech_does_not_count_as_input_for_the_idle_timeout() -> None:
    queue = SpeechQueue()
    before = queue.last_input
    await asyncio.sleep(0.01)
    await queue.put(speech(100), observed=False)
    assert queue.last_input == before
    await queue.put(speech(100))
    assert queue.last_input > before


async def test_the_pipeline_reports_playback_to_the_transport_as_ticks_play_it() -> None:
    transport = MemoryTransport()
    await transport.incoming.put(SpeechIn(speech(8_000), "s1"))
    await transport.incoming.put(Flush("s1"))
    await transport.incoming.put(SpeechIn(speech(16_000 * 5), "s2"))

    async def interrupt_soon() -> None:
        await asyncio.sleep(0.8)
        await transport.incoming.put(Interrupt())

    task = asyncio.create_task(interrupt_soon())
    await run_pipeline(transport, 1.0)
    await task
    started = [r.segment for r in transport.playbacks if not r.finished]
    finished = {r.segment: r for r in transport.playbacks if r.finished}
    assert started == ["s1", "s2"]
    assert finished["s1"] == Playback("s1", finished=True, position=0.5)
    assert finished["s2"].interrupted
    # The ticks that played s2 are exactly the reported position.
    spoken = sum(int(np.count_nonzero(f.audio)) for f in transport.frames) / 16_000
    assert abs(finished["s2"].position - (spoken - 0.5)) < 1e-9
    assert 0.1 <= finished["s2"].position <= 0.6  # the interrupt came 0.8 s in
