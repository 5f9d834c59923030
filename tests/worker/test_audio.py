"""Speech in: normalising PCM and the bounded speech queue."""

from __future__ import annotations

import asyncio

import numpy as np

from protoface.worker.audio import Resampler, SpeechQueue, to_mono_int16
from protoface.worker.transports.port import Playback


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10_000).astype(np.int16)


def test_stereo_is_averaged_to_mono() -> None:
    stereo = np.array([[100, 300], [-200, 200]], dtype="<i2").tobytes()
    assert to_mono_int16(stereo, 2).tolist() == [200, 0]


def test_resampling_in_chunks_keeps_length_and_pitch() -> None:
    source = tone(48_000, 1.0)
    resample = Resampler(48_000)
    out = np.concatenate([resample(source[i : i + 480]) for i in range(0, source.size, 480)])
    assert abs(out.size - 16_000) <= 1
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) * 16_000 / out.size - 440) < 2
    # No clicks at chunk seams: no step exceeds the tone's own steepest slope.
    steepest = 2 * np.pi * 440 / 16_000 * 10_000
    assert np.max(np.abs(np.diff(out.astype(np.int32)))) <= steepest * 1.02


def test_upsampling_8k_gives_the_model_rate() -> None:
    out = Resampler(8_000)(tone(8_000, 0.5, 300))
    assert abs(out.size - 8_000) <= 2


async def test_take_returns_exactly_n_samples_padding_with_silence() -> None:
    queue = SpeechQueue()
    await queue.put(np.ones(100, dtype=np.int16))
    chunk, spoken = queue.take(640)
    assert chunk.size == 640 and spoken == 100
    assert chunk[:100].tolist() == [1] * 100 and not chunk[100:].any()


async def test_interrupt_drops_everything_not_yet_spoken() -> None:
    queue = SpeechQueue()
    await queue.put(np.ones(16_000, dtype=np.int16))
    queue.take(640)
    assert queue.interrupt() == 16_000 - 640
    assert queue.buffered == 0


async def test_a_full_queue_makes_the_producer_wait_instead_of_dropping() -> None:
    queue = SpeechQueue(max_seconds=0.1)
    await queue.put(np.ones(1600, dtype=np.int16))
    blocked = asyncio.create_task(queue.put(np.full(800, 2, dtype=np.int16)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    queue.take(1600)
    await asyncio.wait_for(blocked, 1)
    chunk, spoken = queue.take(800)
    assert spoken == 800 and (chunk == 2).all()


async def test_peek_shows_what_take_returns_next_without_taking_it() -> None:
    played: list[Playback] = []
    queue = SpeechQueue(on_playback=played.append)
    await queue.put(np.arange(300, dtype=np.int16), "seg1")
    queue.end_segment("seg1")
    await queue.put(np.arange(300, 500, dtype=np.int16), "seg2")
    ahead = queue.peek(400)
    assert ahead.tolist() == list(range(400))  # across the segment boundary
    assert queue.buffered == 500 and played == []  # nothing taken, nothing reported
    chunk, _ = queue.take(400)
    assert np.array_equal(chunk, ahead)
    assert queue.peek(640).tolist() == list(range(400, 500))  # only what is queued
    queue.take(100)
    assert queue.peek(640).size == 0
