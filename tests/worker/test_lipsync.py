"""The lip-sync score: from output pixels, against the speech envelope, with its lag."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from protoface.domain.tiers import TIERS
from protoface.worker import offline
from protoface.worker.face import sync_score
from protoface.worker.face.features import FaceParams
from protoface.worker.render import rig
from protoface.worker.render.mock import MockRenderer
from tests import speech
from tests.worker import speechlike


def rendered(signal: np.ndarray, tier_name: str = "mock",
             seed: int = 0) -> tuple[list[np.ndarray], MockRenderer]:
    tier = TIERS[tier_name]
    renderer = MockRenderer(tier.width, tier.height, seed=seed)
    return [item.frame for item in offline.drive(signal, tier, renderer, seed)], renderer


def scored(signal: np.ndarray, frames: list[np.ndarray], renderer: MockRenderer,
           tier_name: str = "mock") -> sync_score.LipSync:
    tier = TIERS[tier_name]
    return sync_score.score(signal, frames, renderer.mouth_box, tier.fps, tier.samples_per_frame)


def test_mouth_opening_is_measured_from_the_pixels_in_the_mouth_box() -> None:
    renderer = MockRenderer(256, 256)
    frames = renderer.render([FaceParams(x, x > 0) for x in (0.0, 0.3, 0.6, 1.0)])
    opening = sync_score.mouth_opening(frames, renderer.mouth_box)
    assert opening[0] == 0 and np.all(np.diff(opening) > 0)


def test_band_pass_keeps_the_syllable_rate_and_drops_drift_and_flicker() -> None:
    t = np.arange(500) / 25
    syllables, drift, flicker = (np.sin(2 * np.pi * f * t) for f in (4.0, 0.3, 11.0))
    out = sync_score.band_pass(syllables + drift + flicker, 25)
    inner = slice(50, 450)  # away from the edges
    assert np.corrcoef(out[inner], syllables[inner])[0, 1] > 0.98


@pytest.mark.parametrize("tier_name", ["mock", "pro"])  # 25 fps and 30 fps
# Vowel syllables only: amplitude-modulated noise is no speech, and the learned lip-sync
# (it follows phones, not loudness) rightly keeps the mouth closed for it.
@pytest.mark.parametrize("make", [speechlike.syllables])
def test_a_speech_like_signal_scores_above_half_at_a_small_lag(
    tier_name: str, make: Callable[[float, int], np.ndarray],
) -> None:
    signal = make(12.0, 1)
    frames, renderer = rendered(signal, tier_name)
    result = scored(signal, frames, renderer, tier_name)
    assert result.r >= 0.5 and -40 <= result.lag_ms <= 80, result
    assert result.passes()


@pytest.mark.parametrize("name", ["greeting.wav", "numbers.wav", "pauses.wav", "fast.wav"])
def test_real_speech_scores_above_half_at_a_small_lag(name: str) -> None:
    utterance = speech.load(name)
    frames, renderer = rendered(utterance)
    result = scored(utterance, frames, renderer)
    assert result.passes(), result


def test_video_delayed_by_160_ms_is_caught_with_its_lag() -> None:
    utterance = speech.load("greeting.wav")
    frames, renderer = rendered(utterance)
    in_sync = scored(utterance, frames, renderer)
    delayed = scored(utterance, [frames[0]] * 4 + frames[:-4], renderer)  # 4 frames late
    assert 130 <= delayed.lag_ms <= 190, delayed
    assert not delayed.passes()
    assert delayed.r < in_sync.r - 0.3  # at zero lag the correlation collapses
    assert abs(delayed.peak_r - in_sync.peak_r) < 0.1  # the same match, just later


def test_a_mouth_that_ignores_the_speech_fails() -> None:
    utterance = speech.load("numbers.wav")
    frames, renderer = rendered(speechlike.syllables(utterance.size / 16_000, seed=5))
    assert not scored(utterance, frames, renderer).passes()


@pytest.mark.parametrize("stock", ["av_stock_001", "av_stock_002"])
def test_the_avatar_model_scores_above_half_on_real_speech_measured_from_its_pixels(
    stock: str,
) -> None:
    """The torch renderer, not the test pattern: r and lag from the rendered mouth."""
    tier = TIERS["lite"]
    renderer = offline.model_renderer(rig.stock_asset(stock), tier, 0)
    utterance = speech.load("greeting.wav")
    frames = [item.frame for item in offline.drive(utterance, tier, renderer, 0)]
    result = sync_score.score(utterance, frames, renderer.mouth_box, tier.fps,
                           tier.samples_per_frame)
    assert result.passes(), result
    late = sync_score.score(utterance, [frames[0]] * 4 + frames[:-4], renderer.mouth_box,
                         tier.fps, tier.samples_per_frame)
    assert not late.passes(), late
