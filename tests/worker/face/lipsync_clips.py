"""The held-out clips kept in tests/data/lipsync: 16 kHz WAV plus phone timings (TSV)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from protoface.worker.face.lipsync.labels import Segment

CLIPS = Path(__file__).resolve().parents[2] / "data" / "lipsync"


def read_wav(path: Path) -> np.ndarray:
    """float32 −1 … 1."""
    with wave.open(str(path), "rb") as f:
        assert f.getframerate() == 16_000 and f.getnchannels() == 1
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768.0


def read_segments(path: Path) -> list[Segment]:
    out = []
    for line in path.read_text().splitlines()[1:]:
        phone, start, end, release = line.split("\t")
        out.append(Segment(phone, float(start), float(end),
                           None if release == "" else float(release)))
    return out


def heldout_clips() -> list[tuple[np.ndarray, list[Segment]]]:
    return [(read_wav(wav), read_segments(wav.with_suffix(".tsv")))
            for wav in sorted(CLIPS.glob("*.wav"))]
