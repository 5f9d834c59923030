"""``audio_source: track``: speech from the sender's audio track in the room.

A live track has no segment markers and no clear RPC: it plays in real time, and an
agent that is interrupted simply goes quiet. So segments are inferred from silence:
speech starts a segment, ``HANGOVER_SECONDS`` of quiet ends it (``Flush``). Silence
between segments is not queued: the avatar idles on its own, the idle timeout sees
that nobody spoke, and a sender clock slightly faster than ours cannot build a backlog.
A track that goes away mid-segment is an interruption: what is queued is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

import numpy as np
from livekit import rtc

from protoface.worker.audio import MODEL_RATE
from protoface.worker.transports.port import Flush, Inbound, Interrupt, SpeechIn

# RMS of int16 speech is in the thousands; a silent WebRTC track is ~0 (comfort noise
# stays well under this, about -40 dBFS).
SPEECH_RMS = 300.0
HANGOVER_SECONDS = 0.4


class SilenceSegmenter:
    def __init__(self, rate: int = MODEL_RATE, *, threshold: float = SPEECH_RMS,
                 hangover_seconds: float = HANGOVER_SECONDS) -> None:
        self.threshold = threshold
        self.hangover = int(hangover_seconds * rate)
        self.speaking = False
        self._quiet = 0  # samples of silence since the last speech, within a segment

    def push(self, samples: np.ndarray) -> list[Inbound]:
        loud = samples.size > 0 and _rms(samples) >= self.threshold
        if not self.speaking:
            if not loud:
                return []  # silence between segments: nothing to say
            self.speaking, self._quiet = True, 0
            return [SpeechIn(samples)]
        # Pauses inside a segment are part of the speech's timing: keep them.
        out: list[Inbound] = [SpeechIn(samples)]
        self._quiet = 0 if loud else self._quiet + samples.size
        if self._quiet >= self.hangover:
            self.speaking = False
            out.append(Flush())
        return out

    def track_ended(self) -> list[Inbound]:
        if not self.speaking:
            return []
        self.speaking = False
        return [Interrupt(), Flush()]


async def track_speech(frames: AsyncIterable[rtc.AudioFrameEvent],
                       emit: Callable[[Inbound], None]) -> None:
    """Translate an ``rtc.AudioStream`` opened at 16 kHz mono (the SDK resamples)."""
    segmenter = SilenceSegmenter()
    try:
        async for event in frames:
            samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
            for item in segmenter.push(samples):
                emit(item)
    finally:
        for item in segmenter.track_ended():
            emit(item)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
