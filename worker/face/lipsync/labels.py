"""Timed phones → per-hop training targets, coarticulated.

The targets are sampled on the model's 10 ms hop grid. Every parameter except lip
closure is a dominance blend (Cohen & Massaro): each phone pulls the parameter toward its
target with a strength that decays away from the phone, faster after it than before, so
gestures are anticipated; rounding and spreading are anticipated the longest (~100 ms).

Lip closure is not blended — a blend would leave /m/ half open next to a vowel. It is 1
over every /p b m/ interval, rises (cubically) over the 80 ms before it (the lips travel toward
each other) and drops to 0 at the release, never later: a frame must never show a
closure after its audio has opened.

The jaw also follows stress: a louder (stressed) syllable opens it wider than the same vowel
unstressed, as jaw-opening studies of read speech find. Each hop's jaw target is scaled by
the speech level around it relative to the clip's loud syllables (``STRESS_PER_20DB``), so
the model learns the relation between loudness and opening from context, not a fixed level
(level augmentation moves the audio, never the labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import phones as ph
from .features import RATE

HOP_S = 0.01
ANTICIPATE_S = np.array([0.05, 0.0, 0.10, 0.10, 0.06, 0.06, 0.05])  # per parameter
CARRY_S = 0.035
CLOSURE_RAMP_S = 0.08
CLOSURE_RAMP_POWER = 3  # the lips start early but meet late: half-way 20 ms before
STOP_RELEASE_S = 0.01
REST_DOMINANCE = 0.01  # a stop's interval ends this long after its burst
STRESS_WINDOW_S = 0.04  # either side of the hop: about a syllable's nucleus
STRESS_PER_20DB = 2.5  # the gain falls by this much 20 dB below the loud syllables
STRESS_GAIN = (0.1, 1.3)  # the gain's range: a whisper to a shout
STRESS_REFERENCE = 90  # percentile of the speech hops' level that is "loud"
STRESS_RANGE_DB = 40.0  # hops this far below the loudest are not speech


@dataclass(frozen=True, slots=True)
class Segment:
    phone: str  # canonical (``phones.canonical``)
    start: float  # seconds
    end: float
    release: float | None = None  # a stop's burst, when the engine marks it


@dataclass(frozen=True, slots=True)
class Labels:
    params: np.ndarray  # float32 [hops, 7]
    visemes: np.ndarray  # int64 [hops]


def hop_times(hops: int) -> np.ndarray:
    """Time each hop's label describes: the end of the hop."""
    return (np.arange(hops) + 1) * HOP_S


def _parts(segments: list[Segment]) -> list[tuple[float, float, ph.Vec, ph.Vec]]:
    """(start, end, target, dominance) per target; a diphthong's halves split its time."""
    out = []
    for seg in segments:
        targets = ph.targets(seg.phone)
        step = (seg.end - seg.start) / len(targets)
        for k, target in enumerate(targets):
            start = seg.start + k * step
            out.append((start, start + step, target, ph.dominance(seg.phone)))
    return out


def blend(segments: list[Segment], times: np.ndarray) -> np.ndarray:
    """Dominance-blended parameters [len(times), 7] (closure left at 0).

    A faint rest pose is always present, so far from every phone (silence the engine did
    not label) the blend settles to the neutral mouth instead of the last phone's shape.
    """
    num = np.zeros((times.size, len(ph.PARAMS)))
    den = np.full((times.size, len(ph.PARAMS)), REST_DOMINANCE)
    t = times[:, None]
    for start, end, target, dom in _parts(segments):
        before = np.exp(-np.maximum(start - t, 0.0) / ANTICIPATE_S.clip(min=1e-3))
        after = np.exp(-np.maximum(t - end, 0.0) / CARRY_S)
        weight = np.asarray(dom) * before * after
        num += weight * np.asarray(target)
        den += weight
    out: np.ndarray = num / den
    out[:, ph.PRESS] = 0.0
    return out


def closure(segments: list[Segment], times: np.ndarray) -> np.ndarray:
    """Lip closure: 1 over /p b m/, a quadratic rise before, 0 from the release on."""
    out = np.zeros(times.size)
    for seg in segments:
        if seg.phone not in ph.BILABIALS:
            continue
        release = seg.release
        if release is None:  # festival and flite end a stop just after its burst
            release = seg.end - (STOP_RELEASE_S if seg.phone != "m" else 0.0)
        rise = np.clip(1.0 - (seg.start - times) / CLOSURE_RAMP_S, 0.0, 1.0) ** CLOSURE_RAMP_POWER
        value = np.where(times >= seg.start, 1.0, rise)
        out = np.maximum(out, np.where(times < release, value, 0.0))
    return out


def viseme_ids(segments: list[Segment], times: np.ndarray) -> np.ndarray:
    """The viseme of the phone sounding at each time (silence outside every phone)."""
    out = np.full(times.size, ph.SIL, dtype=np.int64)
    for seg in segments:
        out[(times >= seg.start) & (times < seg.end)] = ph.viseme_index(seg.phone)
    return out


def with_rest(segments: list[Segment], duration: float) -> list[Segment]:
    """The silence before the first and after the last phone made explicit pauses (espeak
    marks none), so the mouth is pulled to rest there, not left in the last shape."""
    if not segments:
        return [Segment(ph.PAUSE, 0.0, duration)]
    head = [Segment(ph.PAUSE, 0.0, segments[0].start)] if segments[0].start > 0 else []
    tail = ([Segment(ph.PAUSE, segments[-1].end, duration)]
            if segments[-1].end < duration else [])
    return head + segments + tail


def level_db(audio: np.ndarray, hops: int) -> np.ndarray:
    """The speech level (dB) in ±``STRESS_WINDOW_S`` around each hop's time."""
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    centre = (hop_times(hops) * RATE).astype(np.int64)
    half = int(STRESS_WINDOW_S * RATE)
    lo, hi = np.clip(centre - half, 0, audio.size), np.clip(centre + half, 0, audio.size)
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    return np.asarray(10.0 * np.log10(mean + 1e-10))


def stress_gain(audio: np.ndarray, hops: int) -> np.ndarray:
    """How far the jaw opens of its target at each hop: 1 at the clip's loud syllables."""
    db = level_db(audio, hops)
    speech = db[db > db.max() - STRESS_RANGE_DB]
    reference = np.percentile(speech, STRESS_REFERENCE) if speech.size else 0.0
    return np.clip(1.0 + STRESS_PER_20DB * (db - reference) / 20.0, *STRESS_GAIN)


def make_labels(segments: list[Segment], hops: int, audio: np.ndarray) -> Labels:
    times = hop_times(hops)
    segments = with_rest(segments, hops * HOP_S)
    params = blend(segments, times)
    params[:, ph.JAW] *= stress_gain(audio, hops)
    press = closure(segments, times)
    params[:, ph.PRESS] = press
    # Closed lips hide the jaw's small opening and the tongue.
    params[:, ph.JAW] *= 1.0 - 0.7 * press
    params[:, ph.TONGUE] *= 1.0 - press
    return Labels(params.astype(np.float32), viseme_ids(segments, times))
