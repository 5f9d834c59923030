"""A synthetic voice for demos (``synthetic_audio_if_no_input``): when nobody speaks to
the avatar, it says something so the face visibly works.

It loops a short utterance shipped with the worker (``demo-voice.wav``: English speech
synthesized with espeak-ng, 16 kHz mono, with the pauses around it), so the learned
lip-sync sees real speech: its words open the mouth, its /b m p/ close the lips, and its
pauses rest the face.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import Callable
from functools import cache
from importlib import resources

import numpy as np

from protoface.worker.audio import MODEL_RATE, Resampler
from protoface.worker.transports.port import Inbound, SpeechIn

CHUNK_SECONDS = 0.1


@cache
def _utterance(rate: int) -> np.ndarray:
    data = resources.files(__package__).joinpath("demo-voice.wav").read_bytes()
    with wave.open(io.BytesIO(data), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").copy()
    return samples if rate == MODEL_RATE else Resampler(MODEL_RATE, rate)(samples)


def synthetic_voice(start: int, count: int, rate: int = MODEL_RATE) -> np.ndarray:
    """Samples ``start`` … ``start + count`` of the (endless, deterministic) voice."""
    utterance = _utterance(rate)
    return utterance[(start + np.arange(count)) % utterance.size]


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
