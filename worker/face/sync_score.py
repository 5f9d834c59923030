"""The lip-sync score: does the mouth in the output pixels move with the speech?

Measured from what a viewer sees, not from the driver's parameters, so it holds any
renderer to account (the mock pattern now, the model later) through the same two
things: the frames and the renderer's mouth box.

* **mouth opening** per frame: the dark (inner mouth) pixels inside the mouth box —
  darker than ``DARK_SHARE`` of the box's bright reference (skin), which is the 90th
  percentile of its luma over the whole clip;
* **speech envelope** per frame: the RMS of the audio that plays with that frame;
* both band-passed to 2–7 Hz (the syllable rate, where audio–visual speech correlates;
  Chandrasekaran et al., 2009) with an FFT filter, then the Pearson correlation ``r``
  at zero lag, and the lag of the cross-correlation peak within ±200 ms, refined between
  frames with a parabola. A positive lag means the video is later than the audio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MouthBox = tuple[int, int, int, int]  # top, bottom, left, right (pixels, half-open)

BAND_HZ = (2.0, 7.0)
MAX_LAG_MS = 200.0
DARK_SHARE = 0.4  # inner mouth: luma below this share of the box's skin luma
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True, slots=True)
class LipSync:
    r: float  # Pearson correlation of the band-passed envelope and opening, at zero lag
    lag_ms: float  # cross-correlation peak; > 0: video later than audio
    peak_r: float  # correlation at that peak

    def passes(self, min_r: float = 0.5, lag_ms: tuple[float, float] = (-40.0, 80.0)) -> bool:
        return self.r >= min_r and lag_ms[0] <= self.lag_ms <= lag_ms[1]


def mouth_opening(frames: Sequence[np.ndarray], box: MouthBox) -> np.ndarray:
    """Dark inner-mouth pixels inside ``box`` for each RGB frame."""
    top, bottom, left, right = box
    lumas = np.stack([f[top:bottom, left:right].astype(np.float32) @ LUMA for f in frames])
    skin = float(np.percentile(lumas, 90))
    dark: np.ndarray = (lumas < DARK_SHARE * skin).sum(axis=(1, 2))
    return dark.astype(np.float64)


def speech_envelope(samples: np.ndarray, samples_per_frame: int, frames: int) -> np.ndarray:
    """RMS of each frame's audio (silence-padded to ``frames`` frames)."""
    x = np.zeros(frames * samples_per_frame)
    used = min(x.size, samples.size)
    x[:used] = samples[:used]
    power: np.ndarray = np.mean(np.square(x.reshape(frames, samples_per_frame)), axis=1)
    rms: np.ndarray = np.sqrt(power)
    return rms


def band_pass(x: np.ndarray, fps: float, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """Zero-phase FFT band-pass (mean removed; edges zero-padded against wrap-around)."""
    pad = x.size  # circular convolution must not fold the end onto the start
    spectrum = np.fft.rfft(x - x.mean(), n=x.size + pad)
    freqs = np.fft.rfftfreq(x.size + pad, 1.0 / fps)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0.0
    return np.fft.irfft(spectrum, n=x.size + pad)[: x.size]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b)) / denominator if denominator > 0 else 0.0


def lagged(audio: np.ndarray, video: np.ndarray, lag: int) -> float:
    """Pearson r of ``video[t]`` against ``audio[t - lag]``."""
    if lag >= 0:
        return _pearson(audio[: audio.size - lag], video[lag:])
    return _pearson(audio[-lag:], video[: video.size + lag])


def score(samples: np.ndarray, frames: Sequence[np.ndarray], box: MouthBox,
          fps: float, samples_per_frame: int) -> LipSync:
    """Score rendered ``frames`` against the 16 kHz ``samples`` they were rendered for."""
    opening = band_pass(mouth_opening(frames, box), fps)
    envelope = band_pass(speech_envelope(samples, samples_per_frame, len(frames)), fps)
    return correlate(envelope, opening, fps)


def correlate(envelope: np.ndarray, opening: np.ndarray, fps: float) -> LipSync:
    """Zero-lag r and the cross-correlation peak of two band-passed per-frame series."""
    reach = int(MAX_LAG_MS * fps / 1000.0)
    lags = np.arange(-reach, reach + 1)
    rs = np.array([lagged(envelope, opening, int(k)) for k in lags])
    best = int(np.argmax(rs))
    offset = 0.0
    if 0 < best < rs.size - 1:  # the parabola through the peak and its neighbours
        left, mid, right = rs[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return LipSync(
        r=float(rs[reach]),
        lag_ms=(float(lags[best]) + offset) * 1000.0 / fps,
        peak_r=float(rs[best]),
    )
