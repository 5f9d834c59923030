"""The trained model on speech it never trained on (voices, engine and texts held out).

Clips: tests/data/lipsync (the slt voice family and two espeak-ng accents, held-out
texts, with their phone timings) and the repository's own tests/data/speech (texts never
trained on; no phone timings, so only the envelope and silence are scored there).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from protoface.worker.face.lipsync import evaluate
from protoface.worker.face.lipsync.labels import Segment
from protoface.worker.face.lipsync.phones import PRESS
from protoface.worker.face.lipsync.stream import LipSync
from tests.worker.face.lipsync_clips import heldout_clips

torch.set_num_threads(1)
SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech"


@pytest.fixture(scope="module")
def model() -> LipSync:
    return LipSync()


@pytest.fixture(scope="module", params=[25, 30])
def scores(request: pytest.FixtureRequest, model: LipSync) -> evaluate.Scores:
    return evaluate.score(evaluate.run(model, heldout_clips(), request.param))


def test_lips_close_for_most_p_b_m(scores: evaluate.Scores) -> None:
    assert scores.bilabial_hit >= 0.8


def test_few_false_closures_on_other_consonants_and_open_vowels(
        scores: evaluate.Scores) -> None:
    assert scores.false_closure <= 0.3


def test_the_mouth_is_open_on_a_minority_of_speech_frames(scores: evaluate.Scores) -> None:
    assert scores.open_share <= 0.6


def test_the_opening_follows_the_speech_envelope(scores: evaluate.Scores) -> None:
    assert scores.envelope_r >= 0.6
    assert -40 <= scores.envelope_lag_ms <= 80


def test_silence_after_speech_closes_the_mouth_within_150_ms(scores: evaluate.Scores) -> None:
    assert scores.silence_ms_max <= 150.0


def test_visemes_are_mostly_right(scores: evaluate.Scores) -> None:
    assert scores.viseme_acc >= 0.6
    assert scores.per_class["sil"] >= 0.9 and scores.per_class["PP"] >= 0.5


def _speech(name: str) -> np.ndarray:
    with wave.open(str(SPEECH / name), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    return pcm.astype(np.float32) / 32768.0


@pytest.mark.parametrize("name", ["greeting.wav", "numbers.wav", "pauses.wav", "fast.wav"])
def test_aperture_follows_the_speech_envelope_on_the_repository_clips(
        model: LipSync, name: str) -> None:
    no_phones: list[Segment] = []
    track = evaluate.run(model, [(_speech(name), no_phones)], 25)[0]
    r, lag = evaluate.envelope_r(track)
    assert r >= 0.6
    assert -0.04 <= lag <= 0.08


def test_a_pause_in_the_repository_clip_closes_the_mouth(model: LipSync) -> None:
    audio = _speech("pauses.wav")
    track = evaluate.run(model, [(audio, [])], 25)[0]
    quiet = evaluate.envelope(track) < 1e-3
    # Frames 150 ms or more into a silent stretch show a relaxed mouth, unless the next
    # word is within 150 ms: lips close ahead of an /m/ or /p/, inside the pause.
    since, until = np.zeros(quiet.size, int), np.zeros(quiet.size, int)
    for n in range(quiet.size):
        since[n] = (since[n - 1] + 1 if n else 1) if quiet[n] else 0
    for n in reversed(range(quiet.size)):
        until[n] = (until[n + 1] + 1 if n + 1 < quiet.size else 99) if quiet[n] else 0
    settled = (since * 40 >= 150 + 40) & (until * 40 >= 150)
    assert settled.any()
    params = track.params[settled]
    assert np.all(params[:, PRESS] < 0.5)
    assert np.delete(params, PRESS, axis=1).max() < evaluate.NEUTRAL
