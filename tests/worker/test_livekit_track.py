"""``audio_source: track`` (segments inferred from silence) and the synthetic demo voice."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc

from protoface.worker.face.features import FaceDriver
from protoface.worker.transports.livekit.synthetic import synthetic_voice
from protoface.worker.transports.livekit.track import SilenceSegmenter, track_speech
from protoface.worker.transports.port import Flush, Inbound, Interrupt, SpeechIn

TEN_MS = 160


def voice(n: int = TEN_MS) -> np.ndarray:
    return (np.sin(np.arange(n) / 3) * 6000).astype(np.int16)


def quiet(n: int = TEN_MS) -> np.ndarray:
    return (np.random.default_rng(0).normal(0, 30, n)).astype(np.int16)  # comfort noise


def kinds(items: list[Inbound]) -> str:
    return "".join({SpeechIn: "s", Flush: "|", Interrupt: "!"}[type(i)] for i in items)


def test_silence_between_segments_is_not_queued() -> None:
    segmenter = SilenceSegmenter()
    assert [segmenter.push(quiet()) for _ in range(50)] == [[]] * 50


def test_speech_opens_a_segment_and_enough_silence_closes_it() -> None:
    segmenter = SilenceSegmenter(hangover_seconds=0.1)
    items: list[Inbound] = []
    for chunk in [voice()] * 5 + [quiet()] * 5 + [voice()] * 2 + [quiet()] * 12:
        items += segmenter.push(chunk)
    # A 50 ms pause stays inside the segment (speech keeps its timing); 100 ms ends it.
    assert kinds(items) == "s" * 5 + "s" * 5 + "s" * 2 + "s" * 10 + "|"
    assert not segmenter.speaking


def test_a_track_ending_mid_segment_interrupts_it() -> None:
    segmenter = SilenceSegmenter()
    segmenter.push(voice())
    assert kinds(segmenter.track_ended()) == "!|"
    assert segmenter.track_ended() == []


async def test_track_frames_from_the_sdk_become_speech_and_segment_ends() -> None:
    async def frames() -> AsyncIterator[rtc.AudioFrameEvent]:
        for chunk in [voice()] * 3 + [quiet()] * 45:
            yield rtc.AudioFrameEvent(rtc.AudioFrame(chunk.tobytes(), 16_000, 1, chunk.size))

    items: list[Inbound] = []
    await track_speech(frames(), items.append)
    assert kinds(items) == "s" * 43 + "|"  # 400 ms of quiet closes the segment
    first = items[0]
    assert isinstance(first, SpeechIn) and np.array_equal(first.samples, voice())


def test_the_synthetic_voice_is_one_continuous_deterministic_signal() -> None:
    whole = synthetic_voice(0, 3_200)
    assert np.array_equal(whole, np.concatenate([synthetic_voice(0, 1_600),
                                                 synthetic_voice(1_600, 1_600)]))


def test_the_synthetic_voice_opens_the_mouth_in_words_and_closes_it_in_pauses() -> None:
    mouth = FaceDriver(seed=0, fps=25)
    signal = synthetic_voice(0, 16_000 * 4)  # the utterance: 0.5 s pause, words, pause
    opening = [mouth.step(signal[i : i + 640], signal[i + 640 : i + 1_280]).mouth_open
               for i in range(0, signal.size - 640, 640)]
    pause, words = opening[:10], opening[15:60]
    assert max(pause) < 0.05
    assert max(words) > 0.3
    # Syllables: the mouth opens and closes again within the words, not held open.
    assert sum(1 for a, b in itertools.pairwise(words) if a > 0.2 >= b) >= 3


