"""A synthetic voice for demos (``synthetic_audio_if_no_input``): when nobody speaks to
the avatar, it says something so the face visibly works.

It is a tone with a few harmonics, gated at a syllable rate with pauses between
"words": energy that rises and falls like speech, so the mouth opens and closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from protoface.worker.audio import MODEL_RATE
from protoface.worker.transports.port import Inbound, SpeechIn

PITCH_HZ = 140.0
SYLLABLES_PER_SECOND = 4.0
WORD_SECONDS, PAUSE_SECONDS = 1.5, 0.5
CHUNK_SECONDS = 0.1


def synthetic_voice(start: int, count: int, rate: int = MODEL_RATE) -> np.ndarray:
    """Samples ``start`` … ``start + count`` of the (endless, deterministic) voice."""
    t = (start + np.arange(count)) / rate
    tone = sum(np.sin(2 * np.pi * PITCH_HZ * k * t) / k for k in (1, 2, 3))
    # Per syllable: a hump of sound, then a gap as long (the mouth closes between them).
    syllables = np.clip(np.sin(2 * np.pi * SYLLABLES_PER_SECOND * t), 0.0, None)
    speaking = (t % (WORD_SECONDS + PAUSE_SECONDS)) < WORD_SECONDS
    return (tone * syllables * speaking * 6_000).astype(np.int16)


async def speak(emit: Callable[[Inbound], None], rate: int = MODEL_RATE) -> None:
    """Emit the voice in real time until cancelled. It is marked synthetic: the idle
    timeout still ends a session nobody ever spoke to."""
    chunk = int(CHUNK_SECONDS * rate)
    began = time.monotonic()
    sent = 0
    while True:
        emit(SpeechIn(synthetic_voice(sent, chunk, rate), synthetic=True))
        sent += chunk
        # Paced on the wall clock so the queue never runs ahead of the pacer.
        await asyncio.sleep(max(0.0, began + sent / rate - CHUNK_SECONDS - time.monotonic()))
