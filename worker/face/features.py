"""Audio → face parameters, one video frame at a time (streaming, no model weights).

``FaceDriver.step(chunk, lookahead)`` gets exactly one video frame of 16 kHz speech and
at most one frame (≤ 40 ms) of the speech that follows, and returns the ``FaceParams``
the renderer draws for that frame:

* **jaw** (``mouth_open``): the frame's speech level in dB against a slowly adapting
  reference, with a fast attack and a slow release (coarticulation: the mouth opens for
  a syllable at once and relaxes between syllables rather than snapping shut);
* **lip shape** (``lip_round``): the second formant of voiced frames (LPC) — a high F2
  (as in "ee") spreads the lips, a low F2 with a closed jaw (as in "oo") rounds them;
* **lip closure** (``lip_press``): a plosive's burst (an abrupt broadband onset out of a
  near-silent closure) seen in the lookahead presses the lips shut for the frame
  before it — the closure a /p/ or /b/ needs before it can release. The burst alone
  does not tell a /p/ from a /t/ or /k/, so every stop closes the lips briefly (at any
  stop's closure the jaw is nearly shut anyway);
* **life** (blinks, head motion, gaze): ``worker.face_motion``.

Silence relaxes everything to a neutral closed mouth. All of it is deterministic per
seed: the same seed and the same speech give the same parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protoface.worker.face.motion import Life

RATE = 16_000
SILENCE_DB = -50.0  # frame level (dBFS) below this is silence
JAW_RANGE_DB = 27.0  # from closed to fully open, below the running speech peak
PEAK_FLOOR_DB = -26.0  # the reference never drops below this: quiet noise stays closed
PEAK_RELEASE_DB_PER_S = 3.0  # how fast the reference forgets a loud passage
JAW_ATTACK_S = 0.02  # time constants of the jaw's one-pole smoothing
JAW_RELEASE_S = 0.07
SHAPE_S = 0.06  # lip rounding follows the spectrum this slowly
LPC_ORDER = 16  # 2 + kHz of the sample rate: enough poles for four formants
PRESS_RELEASE_S = 0.03
BURST_WINDOW = 80  # 5 ms: the resolution at which bursts are found
BURST_RISE_DB = 18.0  # a burst is this much louder than each of the 10 ms before it …
BURST_BELOW_PEAK_DB = 30.0  # … and at most this far under the speech peak at once …
BURST_HIGH_SHARE = 0.25  # … with at least this share of its first 10 ms above 2.5 kHz


@dataclass(frozen=True, slots=True)
class FaceParams:
    """What the renderer draws for one video frame. Every field has a neutral default."""

    mouth_open: float  # jaw and lip opening: 0 closed … 1 fully open
    speaking: bool
    lip_round: float = 0.0  # −1 spread (ee) … 0 neutral … +1 rounded (oo)
    lip_press: float = 0.0  # 0 relaxed … 1 lips pressed shut (plosive onset: p, b, m)
    blink: float = 0.0  # 0 eyes open … 1 eyelids closed
    head_yaw: float = 0.0  # degrees, small (|x| ≤ 4)
    head_pitch: float = 0.0  # degrees, small (|x| ≤ 3)
    head_roll: float = 0.0  # degrees, small (|x| ≤ 3)
    gaze_x: float = 0.0  # −1 … +1: fraction of the largest iris shift, + is image right
    gaze_y: float = 0.0  # −1 … +1, + is down
    # The lip-sync model's articulations this set had no field for (0 … 1 each; its jaw
    # is ``mouth_open``, closure ``lip_press``, spread and rounding ``lip_round``).
    lip_raise: float = 0.0  # upper lip raised off the teeth
    lip_tuck: float = 0.0  # lower lip tucked under the upper teeth (f, v)
    tongue: float = 0.0  # tongue tip visible (th, l)
    breath: float = 0.0  # 0 exhaled … 1 inhaled: the shoulders' slow rise


def level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (int16 full scale); silence is −180."""
    if samples.size == 0:
        return -180.0
    power = float(np.mean(np.square(samples.astype(np.float64))))
    return 10.0 * math.log10(max(power, 1e-18) / 32768.0**2)


def _alpha(seconds: float, period: float) -> float:
    """One-pole smoothing coefficient for a time constant, at this frame period."""
    return 1.0 - math.exp(-period / seconds)


class Jaw:
    """Mouth opening from speech level: fast attack, slow release, closed in silence."""

    def __init__(self, fps: int) -> None:
        period = 1.0 / fps
        self.attack = _alpha(JAW_ATTACK_S, period)
        self.release = _alpha(JAW_RELEASE_S, period)
        self.peak_release = PEAK_RELEASE_DB_PER_S * period
        self.peak = PEAK_FLOOR_DB
        self.level = 0.0

    def step(self, db: float) -> float:
        """``db`` is the level of the frame (with its lookahead); returns the opening."""
        self.peak = max(db, self.peak - self.peak_release, PEAK_FLOOR_DB)
        target = 0.0
        if db > SILENCE_DB:
            target = min(1.0, max(0.0, (db - self.peak + JAW_RANGE_DB) / JAW_RANGE_DB))
        rate = self.attack if target > self.level else self.release
        self.level += rate * (target - self.level)
        if self.level < 0.02 and target == 0.0:
            self.level = 0.0  # rest exactly closed, not asymptotically
        return self.level


def _band_power(spectrum: np.ndarray, freqs: np.ndarray, low: float, high: float) -> float:
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def formants(chunk: np.ndarray, order: int = LPC_ORDER) -> np.ndarray:
    """Formant frequencies (Hz, ascending) of a voiced frame, by LPC root finding.

    Pre-emphasis removes the glottal tilt, so the estimate does not depend on the voice's
    brightness or level; roots wider than 500 Hz are not formants.
    """
    x = chunk.astype(np.float64)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1]) * np.hamming(x.size)
    r = np.correlate(x, x, "full")[x.size - 1 : x.size + order]
    if r[0] <= 0.0:
        return np.zeros(0)
    lags = np.abs(np.subtract.outer(np.arange(order), np.arange(order)))
    toeplitz = r[lags] + np.eye(order) * r[0] * 1e-6  # a little ridge: never singular
    predictor = np.linalg.solve(toeplitz, r[1 : order + 1])
    roots = np.roots(np.concatenate([[1.0], -predictor]))
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * RATE / (2 * np.pi)
    bandwidths = -np.log(np.abs(roots)) * RATE / np.pi
    return np.sort(freqs[(freqs > 200) & (freqs < 4000) & (bandwidths < 500)])


class LipShape:
    """Lip rounding (+) or spreading (−) from the second formant of voiced frames.

    Rounded lips lengthen the vocal tract and lower F2 ("oo" ≈ 850 Hz); spread lips
    raise it ("ee" ≈ 2250 Hz). Open vowels ("ah") also have a low F2 with the jaw
    dropped, so rounding is only credited while F1 is low (a closed jaw).
    """

    F2_NEUTRAL = 1500.0  # a neutral (uniform) vocal tract: the schwa
    F2_SPAN = 500.0
    F1_ROUND = (550.0, 750.0)  # rounding fades out as F1 rises through this range

    def __init__(self, fps: int) -> None:
        self.rate = _alpha(SHAPE_S, 1.0 / fps)
        self.value = 0.0

    def step(self, chunk: np.ndarray, speaking: bool) -> float:
        target = self._target(chunk) if speaking else 0.0
        if target is not None:
            self.value += self.rate * (target - self.value)
        return self.value

    def _target(self, chunk: np.ndarray) -> float | None:
        """The shape this frame asks for; None when it is unvoiced (hold the last one)."""
        x = chunk.astype(np.float64)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
        freqs = np.fft.rfftfreq(x.size, 1.0 / RATE)
        voiced = _band_power(spectrum, freqs, 100, 3500)
        if voiced <= 0.0 or _band_power(spectrum, freqs, 4000, 8000) > voiced:
            return None  # a fricative says nothing about the lips
        found = formants(chunk)
        if found.size < 2:
            return None
        f1, f2 = float(found[0]), float(found[1])
        shape = min(1.0, max(-1.0, (self.F2_NEUTRAL - f2) / self.F2_SPAN))
        if shape > 0:
            low, high = self.F1_ROUND
            shape *= min(1.0, max(0.0, (high - f1) / (high - low)))
        return shape


def find_burst(window: np.ndarray, peak_db: float) -> int | None:
    """Sample index of the first plosive burst in ``window``, if any.

    A burst is a release: within 5 ms the sound jumps from a closure (both 5 ms windows
    before it ``BURST_RISE_DB`` quieter) to within ``BURST_BELOW_PEAK_DB`` of the speech
    peak, with broadband energy. A syllable that swells (a vowel, a fricative, noise
    under an envelope) takes longer than 5 ms to climb that far, and a vowel onset has
    almost no energy above 2.5 kHz.
    """
    count = window.size // BURST_WINDOW
    if count < 4:
        return None
    parts = window[: count * BURST_WINDOW].astype(np.float64).reshape(count, BURST_WINDOW)
    dbs = 10.0 * np.log10(np.maximum(np.mean(parts**2, axis=1), 1e-18) / 32768.0**2)
    freqs = np.fft.rfftfreq(2 * BURST_WINDOW, 1.0 / RATE)
    for k in range(2, count - 1):
        if (dbs[k] < peak_db - BURST_BELOW_PEAK_DB or dbs[k] <= SILENCE_DB
                or dbs[k] - max(dbs[k - 2], dbs[k - 1]) < BURST_RISE_DB):
            continue
        spectrum = np.abs(np.fft.rfft(parts[k : k + 2].ravel())) ** 2
        if spectrum[freqs >= 2500].sum() >= BURST_HIGH_SHARE * spectrum.sum():
            return k * BURST_WINDOW
    return None


class FaceDriver:
    """Streaming audio → ``FaceParams``: one call per video frame, deterministic per seed."""

    def __init__(self, seed: int = 0, fps: int = 25) -> None:
        self.fps = fps
        self.samples_per_frame = RATE // fps
        self.lookahead_samples = min(self.samples_per_frame, RATE * 40 // 1000)
        self.jaw = Jaw(fps)
        self.shape = LipShape(fps)
        self.life = Life(seed, fps)
        self.press = 0.0
        self._press_release = _alpha(PRESS_RELEASE_S, 1.0 / fps)

    def step(self, chunk: np.ndarray, lookahead: np.ndarray | None = None) -> FaceParams:
        """``chunk``: this frame's int16 speech; ``lookahead``: what follows (≤ 40 ms)."""
        ahead = (np.zeros(0, np.int16) if lookahead is None
                 else lookahead[: self.lookahead_samples])
        chunk_db = level_db(chunk)
        speaking = chunk_db > SILENCE_DB
        # The jaw hears the frame and the first half of the lookahead: the mouth starts to
        # open just before the sound, as a speaker's does.
        opening = self.jaw.step(level_db(np.concatenate([chunk, ahead[: ahead.size // 2]])))
        press = self._press(chunk, ahead)
        motion = self.life.step(speaking=speaking, emphasis=opening)
        return FaceParams(
            mouth_open=opening * (1.0 - press),
            speaking=speaking,
            lip_round=self.shape.step(chunk, speaking),
            lip_press=press,
            blink=motion.blink,
            head_yaw=motion.head_yaw,
            head_pitch=motion.head_pitch,
            head_roll=motion.head_roll,
            gaze_x=motion.gaze_x,
            gaze_y=motion.gaze_y,
            breath=motion.breath,
        )

    def _press(self, chunk: np.ndarray, ahead: np.ndarray) -> float:
        """Lips shut for the frame before a burst (it releases in the burst's own frame)."""
        burst = find_burst(np.concatenate([chunk, ahead]), self.jaw.peak)
        if burst is not None and burst >= chunk.size // 2:
            self.press = 1.0
        else:
            self.press -= self._press_release * self.press
            if self.press < 0.05:
                self.press = 0.0
        return self.press


def _warm_up() -> None:
    """Run the numeric paths once, at import (FFT plans, LAPACK): ~7 ms the first time,
    which must not land on a session's first ticks."""
    noise = np.random.default_rng(0).normal(0, 3_000, 1_280).astype(np.int16)
    formants(noise[:640])
    find_burst(noise, 0.0)


_warm_up()
