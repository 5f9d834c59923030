"""Phone → articulation targets: closures held and never late, gestures anticipated."""

from __future__ import annotations

import numpy as np
import pytest

from protoface.worker.face.lipsync import phones as ph
from protoface.worker.face.lipsync.ipa import to_arpabet
from protoface.worker.face.lipsync.labels import (
    HOP_S,
    RATE,
    Segment,
    hop_times,
    make_labels,
    stress_gain,
)


def _at(times: np.ndarray, t: float) -> int:
    return int(np.argmin(np.abs(times - t)))


def test_every_phone_has_a_viseme_a_target_and_a_dominance() -> None:
    for phone in ph.PHONES:
        assert 0 <= ph.viseme_index(phone) < len(ph.VISEMES)
        for target in ph.targets(phone):
            assert len(target) == len(ph.PARAMS)
            assert all(0.0 <= v <= 1.0 for v in target)
        assert all(d > 0 for d in ph.dominance(phone))


@pytest.mark.parametrize(("ipa", "arpabet"), [
    ("ˈaɪ", "ay"), ("θ", "th"), ("ð", "dh"), ("uː", "uw"), ("ɑːɹ", "aa"), ("ʉː", "uw"),
    ("tʃ", "ch"), ("", "pau"), ("n̩", "n"), ("ɚ", "er"),
])
def test_espeak_ipa_names_map_to_arpabet(ipa: str, arpabet: str) -> None:
    assert to_arpabet(ipa) == arpabet


def test_unknown_ipa_is_an_error_not_a_guess() -> None:
    with pytest.raises(KeyError):
        to_arpabet("ʘ")


SEGMENTS = [Segment("pau", 0.0, 0.3), Segment("aa", 0.3, 0.5), Segment("m", 0.5, 0.6),
            Segment("aa", 0.6, 0.8), Segment("p", 0.8, 0.9, release=0.88),
            Segment("s", 0.9, 1.0), Segment("t", 1.0, 1.05), Segment("uw", 1.05, 1.3),
            Segment("pau", 1.3, 2.0)]


def _speech(levels: list[tuple[float, float, float]], seconds: float = 2.0) -> np.ndarray:
    """A 200 Hz tone at ``amplitude`` from ``start`` to ``end`` seconds, silence elsewhere."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros(t.size, np.float32)
    for start, end, amplitude in levels:
        on = (t >= start) & (t < end)
        out[on] = amplitude * np.sin(2 * np.pi * 200 * t[on])
    return out


AUDIO = _speech([(0.3, 1.3, 0.3)])  # speech at one level throughout


def test_closure_is_held_through_a_bilabial_and_released_at_its_burst() -> None:
    labels = make_labels(SEGMENTS, 200, AUDIO)
    t, press = hop_times(200), labels.params[:, ph.PRESS]
    inside = (t >= 0.5) & (t < 0.6)
    assert np.all(press[inside] == 1.0)
    assert np.all(press[(t >= 0.88) & (t < 1.3)] == 0.0)  # after /p/'s burst: open
    assert press[_at(t, 0.87)] == 1.0
    assert 0.2 < press[_at(t, 0.48)] < 0.9  # the lips travel toward the closure
    assert press[_at(t, 0.41)] == 0.0  # … but not a whole syllable early


def test_rounding_is_anticipated_across_lip_neutral_consonants() -> None:
    labels = make_labels(SEGMENTS, 200, AUDIO)
    t, rnd = hop_times(200), labels.params[:, ph.ROUND]
    assert rnd[_at(t, 0.99)] > 0.3  # on the /s/ before "oo"
    assert rnd[_at(t, 0.7)] < 0.1  # not yet on the /aa/
    assert rnd[_at(t, 1.15)] > 0.8


def test_silence_relaxes_to_a_closed_neutral_mouth_within_150_ms() -> None:
    labels = make_labels(SEGMENTS, 200, AUDIO)
    t = hop_times(200)
    settled = labels.params[t >= 1.3 + 0.15]
    assert settled.max() < 0.05
    assert labels.params[_at(t, 0.15)].max() < 0.1  # 150 ms before speech: near rest


def test_visemes_follow_the_sounding_phone() -> None:
    labels = make_labels(SEGMENTS, 200, AUDIO)
    t = hop_times(200)
    names = [ph.VISEMES[v] for v in labels.visemes[[_at(t, x) for x in (0.1, 0.4, 0.55, 1.2)]]]
    assert names == ["sil", "aa", "PP", "ou"]
    assert HOP_S == 0.01


def test_a_quieter_syllable_opens_the_jaw_less_than_the_same_vowel_stressed() -> None:
    # "aa m aa": the second vowel 12 dB below the first.
    audio = _speech([(0.3, 0.5, 0.4), (0.5, 0.6, 0.1), (0.6, 0.8, 0.1)])
    labels = make_labels(SEGMENTS, 200, audio)
    t, jaw = hop_times(200), labels.params[:, ph.JAW]
    stressed, unstressed = jaw[_at(t, 0.4)], jaw[_at(t, 0.7)]
    assert stressed > 0.6
    assert unstressed < 0.6 * stressed


def test_the_jaw_follows_loudness_relative_to_the_clip_not_its_level() -> None:
    # Level augmentation moves the audio, never the labels.
    audio = _speech([(0.3, 0.5, 0.4), (0.6, 0.8, 0.1)])
    assert np.allclose(stress_gain(audio, 200), stress_gain(audio * 0.1, 200), atol=1e-3)
    assert np.allclose(stress_gain(audio, 200), stress_gain(audio * 3.0, 200), atol=1e-3)
