"""Speech-like test signals with known structure: vowels, syllables, bursts (16 kHz int16)."""

from __future__ import annotations

import math

import numpy as np

RATE = 16_000
# First three formants (Hz) of a few English vowels (Peterson & Barney, adult male).
VOWELS = {
    "ee": (270, 2290, 3010), "ah": (730, 1090, 2440),
    "oo": (300, 870, 2240), "oh": (500, 900, 2400),
}


def vowel(name: str, seconds: float, f0: float = 120.0, peak: float = 8_000.0) -> np.ndarray:
    """A sustained vowel: a harmonic source (−6 dB/octave) through cascaded formants."""
    t = np.arange(int(RATE * seconds)) / RATE
    out = np.zeros_like(t)
    for k in range(1, int(7_800 / f0)):
        f = k * f0
        gain = 1.0 / k
        for formant in (*VOWELS[name], 3_500, 4_500):  # F4, F5: the same for every vowel
            width = 0.06 * formant + 50
            gain *= formant**2 / math.hypot(formant**2 - f**2, width * f)
        out += gain * np.sin(2 * np.pi * f * t)
    return (out / np.abs(out).max() * peak).astype(np.int16)


def syllables(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like: vowels in syllables of 120–320 ms at ≈ 4 Hz, raised-cosine
    envelopes, a pause of 300–700 ms every few syllables, a little noise floor."""
    rng = np.random.default_rng(seed)
    total = int(RATE * seconds)
    out = np.zeros(total)
    names = list(VOWELS)
    at = int(0.3 * RATE)
    since_pause = 0
    while at < total:
        length = int(rng.uniform(0.12, 0.32) * RATE)
        source = vowel(names[rng.integers(len(names))], length / RATE, rng.uniform(100, 160))
        envelope = np.sin(np.pi * np.arange(source.size) / source.size) ** 2
        end = min(total, at + source.size)
        out[at:end] += (source * envelope * rng.uniform(0.4, 1.0))[: end - at]
        at = end + int(rng.uniform(0.02, 0.08) * RATE)
        since_pause += 1
        if since_pause >= rng.integers(3, 7):
            at += int(rng.uniform(0.3, 0.7) * RATE)
            since_pause = 0
    out += rng.normal(0, 3, total)
    return np.clip(out, -32768, 32767).astype(np.int16)


def burst_then_vowel(closure: float = 0.3, seed: int = 0) -> tuple[np.ndarray, int]:
    """"pa": a silent closure, a 12 ms broadband burst, then "ah". Returns (signal, burst)."""
    rng = np.random.default_rng(seed)
    start = int(closure * RATE)
    burst = (rng.normal(0, 4_000, int(0.012 * RATE))).astype(np.int16)
    signal = np.concatenate([np.zeros(start, np.int16), burst, vowel("ah", 0.3),
                             np.zeros(int(0.3 * RATE), np.int16)])
    return signal, start


def frames(signal: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each frame of ``signal`` with the 40 ms that follow it (the driver's lookahead)."""
    padded = np.concatenate([signal, np.zeros(size + 640, np.int16)])
    return [(padded[i : i + size], padded[i + size : i + size + min(size, 640)])
            for i in range(0, signal.size, size)]


def am_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise amplitude-modulated at the syllable rate: 3–6 Hz syllables, pauses between
    phrases — the envelope of speech with none of its spectrum."""
    rng = np.random.default_rng(seed)
    total = int(RATE * seconds)
    envelope = np.zeros(total)
    at = int(0.3 * RATE)
    while at < total:
        length = int(RATE / rng.uniform(3.0, 6.0))
        end = min(total, at + length)
        envelope[at:end] = (np.sin(np.pi * np.arange(length) / length) ** 2)[: end - at]
        envelope[at:end] *= rng.uniform(0.3, 1.0)
        at = end + (int(rng.uniform(0.3, 0.6) * RATE) if rng.random() < 0.2 else 0)
    noise = rng.normal(0, 6_000, total) * envelope + rng.normal(0, 3, total)
    return np.clip(noise, -32768, 32767).astype(np.int16)
