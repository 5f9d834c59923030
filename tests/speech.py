"""Test speech: the bundled WAVs (see tests/data/speech/README.md)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SPEECH_DIR = Path(__file__).parent / "data" / "speech"


def load(name: str = "greeting.wav") -> np.ndarray:
    """16 kHz mono int16 samples of a bundled utterance."""
    return load_path(SPEECH_DIR / name)


def load_path(path: Path) -> np.ndarray:
    """16 kHz mono int16 samples of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()


def chunks(samples: np.ndarray, ms: int = 20) -> list[bytes]:
    step = 16 * ms
    return [samples[i : i + step].tobytes() for i in range(0, samples.size, step)]
