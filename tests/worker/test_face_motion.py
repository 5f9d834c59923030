"""Life in the face: blinks at turn-taking, nods on stress, calmer listening, breathing,
and rest in the portrait's own expression a while after a turn."""

from __future__ import annotations

import itertools

import numpy as np

from protoface.worker.face.motion import REST_AFTER_S, REST_EASE_S, REST_LEAVE_S, Life, Motion

FPS = 25


def run(seed: int, speaking: list[bool], emphasis: list[float]) -> list[Motion]:
    life = Life(seed, FPS)
    return [life.step(speaking=s, emphasis=e) for s, e in zip(speaking, emphasis, strict=True)]


def turns(seconds: int, phrase_s: float = 2.0) -> list[bool]:
    """Speech and silence taking turns every ``phrase_s`` seconds."""
    return [int(i / FPS / phrase_s) % 2 == 0 for i in range(seconds * FPS)]


def test_blinks_gather_at_the_turns() -> None:
    near, total = 0, 0
    speaking = turns(60)
    boundaries = [i for i in range(1, len(speaking)) if speaking[i] != speaking[i - 1]]
    for seed in range(8):
        blink = [m.blink for m in run(seed, speaking, [0.3 * s for s in speaking])]
        starts = [i for i in range(1, len(blink)) if blink[i] > 0 and blink[i - 1] == 0]
        total += len(starts)
        # A phrase ends after 0.25 s of silence; a blink comes within 0.3 s after that.
        near += sum(any(0 <= s - b <= 0.7 * FPS for b in boundaries) for s in starts)
    assert near / total >= 0.45  # by chance: 0.7 s of every 2 s, about a third


def test_stressed_syllables_and_phrase_ends_nod_the_head() -> None:
    speaking = turns(12)
    calm = run(3, speaking, [0.3 * s for s in speaking])
    # A syllable every 0.4 s opens the jaw wide, then nearly closes it.
    stressed = [0.8 if s and i % 10 < 3 else 0.1 * s for i, s in enumerate(speaking)]
    nodding = run(3, speaking, stressed)
    dip = np.array([n.head_pitch - c.head_pitch for n, c in zip(nodding, calm, strict=True)])
    assert dip.min() <= -1.0 and dip.max() <= 0.05  # the head dips, down and back
    assert (dip < -0.3).mean() > 0.2  # on most syllables, not once


def test_the_head_is_calmer_listening_than_speaking_but_never_still() -> None:
    listening = np.array([[m.head_yaw, m.head_pitch, m.head_roll]
                          for m in run(5, [False] * 30 * FPS, [0.0] * 30 * FPS)])
    speaking = np.array([[m.head_yaw, m.head_pitch, m.head_roll]
                         for m in run(5, [True] * 30 * FPS, [0.3] * 30 * FPS)])
    assert 0.3 < listening.std() < 0.8 * speaking.std()
    assert (np.abs(np.diff(listening, axis=0)).sum(axis=1) > 0).all()  # it always moves


def test_breathing_is_a_slow_rise_and_fall_of_0_2_to_0_3_hz() -> None:
    for seed in range(4):
        breath = np.array([m.breath for m in run(seed, [False] * 40 * FPS, [0.0] * 40 * FPS)])
        assert breath.min() >= 0 and breath.max() <= 1
        spectrum = np.abs(np.fft.rfft(breath - breath.mean()))
        peak = np.fft.rfftfreq(breath.size, 1 / FPS)[spectrum.argmax()]
        assert 0.18 <= peak <= 0.32


def test_a_session_starts_composed_and_settles_into_the_portraits_own_expression() -> None:
    rest = [m.rest for m in run(0, [False] * 3 * FPS, [0.0] * 3 * FPS)]
    settled = round((REST_AFTER_S + REST_EASE_S) * FPS)
    assert max(rest[: round(REST_AFTER_S * FPS)]) < 1e-9  # a first word can come at once
    assert all(b >= a for a, b in itertools.pairwise(rest))  # eased in, not popped
    assert min(rest[settled:]) == 1.0


def test_speech_takes_the_face_out_of_rest_at_once_and_a_short_pause_keeps_it_out() -> None:
    # 2 s of silence (at rest), 1 s of speech, a 0.6 s pause, speech again, then silence.
    speaking = ([False] * 2 * FPS + [True] * FPS + [False] * round(0.6 * FPS) + [True] * FPS
                + [False] * 2 * FPS)
    rest = [m.rest for m in run(0, speaking, [0.3 * s for s in speaking])]
    onset = 2 * FPS
    assert rest[onset - 1] == 1.0
    assert rest[onset + round(REST_LEAVE_S * FPS)] == 0.0  # out within REST_LEAVE_S
    pause = slice(3 * FPS, 3 * FPS + round(0.6 * FPS))
    assert max(rest[pause]) == 0.0  # a pause inside a turn is not rest
    assert rest[-1] == 1.0  # the turn's end is, a while later
