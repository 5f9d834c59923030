"""The learned lip-sync as a viewer sees it: lip gaps re-detected on rendered frames.

The held-out clips (voices, engines and texts the model never trained on) are rendered
through the mesh-driven renderer, and the face analysis measures the inner-lip gap of
every frame. On every stock avatar the lips meet at /p b m/ — the photo whose lips are parted
at rest (``av_stock_001``) too: a press closes the portrait's own gap — rarely
elsewhere; the mouth is open on a minority of speech frames, its opening follows the
speech envelope, and it is closed again within 150 ms of the speech's end.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from protoface.domain.tiers import TIERS
from protoface.worker import offline
from protoface.worker.face.analysis.measure import Measurement, measure
from protoface.worker.face.lipsync.evaluate import frame_rms, lagged_r
from protoface.worker.render.rig import stock_asset
from tests import speech

CLIPS = Path(__file__).resolve().parents[2] / "data" / "lipsync"
NAMES = ("flite_slt", "festival_slt_hts", "espeak_en-029_f5", "espeak_en-gb-scotland_m8")
FPS = 25
OTHER = {"aa", "ae", "ah", "ao", "aw", "ay", "f", "v", "s", "z", "t", "d", "k", "g"}


AVATARS = ("av_stock_001", "av_stock_002", "av_stock_003")


class Scores(NamedTuple):
    avatar: str
    closures: float  # share of /p b m/ with the lips closed within ±40 ms
    false: float  # share of other consonants and open vowels with the lips closed
    open: float  # share of speech frames with the mouth open
    envelope_r: float  # lip gap vs speech envelope (2–7 Hz), mean over the clips
    lags: list[float]  # each clip's best lag, seconds
    settle: float  # the longest a clip's mouth takes to close for good after speech, s


def _gaps(name: str, avatar: str
          ) -> tuple[np.ndarray, list[tuple[str, float, float]], np.ndarray]:
    samples = speech.load_path(CLIPS / f"{name}.wav")
    with (CLIPS / f"{name}.tsv").open() as f:
        phones = [(r["phone"], float(r["start"]), float(r["end"]))
                  for r in csv.DictReader(f, delimiter="\t")]
    tier = TIERS["standard"]  # at 256² a closed and a just-parted mouth differ by a pixel
    renderer = offline.model_renderer(stock_asset(avatar), tier, 0)
    gaps, previous = [], None
    for item in offline.drive(samples, tier, renderer, 0):
        found: Measurement | None = measure(item.frame, previous)
        previous = found
        gaps.append(found.lip_gap if found else np.nan)
    return np.array(gaps), phones, samples


def _settle(closed: np.ndarray, phones: list[tuple[str, float, float]]) -> float:
    """Seconds from the last phone's end until every later frame shows closed lips."""
    end = max(e for p, _, e in phones if p != "pau")
    centres = (np.arange(closed.size) + 0.5) / FPS
    open_after = [c for c, shut in zip(centres, closed, strict=True) if c > end and not shut]
    return max(open_after) + 0.5 / FPS - end if open_after else 0.0


@pytest.fixture(scope="module", params=AVATARS)
def scored(request: pytest.FixtureRequest) -> Scores:
    return score(request.param)


def score(avatar: str) -> Scores:
    """The held-out clips rendered on ``avatar`` and measured (also ``bench.lipsync_pixels``)."""
    hits = bilabials = false = others = 0
    opened: list[bool] = []
    follows: list[tuple[float, float]] = []
    settle = 0.0
    for name in NAMES:
        gaps, phones, samples = _gaps(name, avatar)
        assert not np.isnan(gaps).any()  # the face is found on every frame
        closed = gaps < 0.1 * gaps.max()
        for phone, start, end in phones:
            near = [i for i in range(gaps.size) if start - 0.04 <= (i + 0.5) / FPS <= end + 0.04]
            if phone in {"p", "b", "m"}:
                bilabials += 1
                hits += bool(near) and bool(closed[near].any())
            elif phone in OTHER:
                others += 1
                false += bool(closed[min(int((start + end) / 2 * FPS), gaps.size - 1)])
        speaking = [i for i in range(gaps.size)
                    if any(s <= (i + 0.5) / FPS <= e for p, s, e in phones if p != "pau")]
        opened += list(gaps[speaking] > 0.25 * gaps.max())
        follows.append(lagged_r(gaps, frame_rms(samples, gaps.size, FPS), FPS))
        settle = max(settle, _settle(closed, phones))
    return Scores(avatar, hits / bilabials, false / others, float(np.mean(opened)),
                  float(np.mean([r for r, _ in follows])), [lag for _, lag in follows],
                  settle)


def test_the_rendered_lips_meet_at_most_p_b_and_m(scored: Scores) -> None:
    assert scored.closures >= 0.8


def test_the_rendered_lips_rarely_meet_on_other_consonants_and_open_vowels(
    scored: Scores,
) -> None:
    assert scored.false <= 0.3


def test_the_rendered_mouth_is_open_on_a_minority_of_speech_frames(
    scored: Scores,
) -> None:
    assert scored.open <= 0.6


def test_the_rendered_opening_follows_the_speech_envelope(scored: Scores) -> None:
    # Pearson r of the measured lip gap against the frame RMS, both band-passed to the
    # syllable rate, at the best lag in −40 … +80 ms; the mean over the held-out clips.
    assert scored.envelope_r >= 0.6
    assert all(-0.04 <= lag <= 0.08 for lag in scored.lags)


def test_the_rendered_mouth_closes_within_150_ms_of_the_speech_ending(scored: Scores) -> None:
    assert scored.settle <= 0.15
