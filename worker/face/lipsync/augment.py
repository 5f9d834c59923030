"""Audio augmentation and resampling for training and robustness evaluation.

Deterministic: every random choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import subprocess

import numpy as np

RATE = 16_000


def sox_resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by sox (dither off, so repeatable); float −1 … 1."""
    if rate_in == rate_out:
        return samples.astype(np.float32)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    raw = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1"]
    out = subprocess.run(["sox", "-D", *raw, "-r", str(rate_in), "-", *raw, "-r",
                          str(rate_out), "-", "rate", "-h"],
                         input=pcm, capture_output=True, check=True).stdout
    return (np.frombuffer(out, "<i2").astype(np.float32) / 32768.0)


def sox_pitch(samples: np.ndarray, cents: float) -> np.ndarray:
    """Shift pitch and formants together, duration kept (16 kHz): a shorter or longer
    vocal tract — a new voice for the same phone timings."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    raw = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", str(RATE)]
    out = subprocess.run(["sox", "-D", *raw, "-", *raw, "-", "pitch", f"{cents:.0f}"],
                         input=pcm, capture_output=True, check=True).stdout
    shifted = np.frombuffer(out, "<i2").astype(np.float32) / 32768.0
    return np.resize(shifted, samples.size) if shifted.size != samples.size else shifted


def linear_resample(samples: np.ndarray, rate_in: int, rate_out: int = RATE) -> np.ndarray:
    """Linear interpolation, no anti-alias filter: what the worker's ``Resampler`` does to
    24 and 48 kHz speech, aliasing included."""
    if rate_in == rate_out:
        return samples.astype(np.float32)
    positions = np.arange(0.0, samples.size - 1, rate_in / rate_out)
    out: np.ndarray = np.interp(positions, np.arange(samples.size), samples)
    return out.astype(np.float32)


def gain(samples: np.ndarray, db: float) -> np.ndarray:
    """Level change, clipped to full scale as int16 PCM would be."""
    return np.clip(samples * np.float32(10.0 ** (db / 20.0)), -1.0, 1.0)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Noise at ``snr_db`` under the speech's active level (pink-ish: white, low-passed)."""
    active = samples[np.abs(samples) > 1e-3]
    level = float(np.sqrt(np.mean(active**2))) if active.size else 1e-3
    white = rng.standard_normal(samples.size).astype(np.float32)
    pink = np.convolve(white, np.ones(4, np.float32) / 2.0, mode="same")
    noise = pink * level / float(np.sqrt(np.mean(pink**2)) + 1e-9) * 10.0 ** (-snr_db / 20.0)
    out: np.ndarray = np.clip(samples + noise.astype(np.float32), -1.0, 1.0)
    return out


def band_limit(samples: np.ndarray, low: float, high: float) -> np.ndarray:
    """Keep only ``low`` … ``high`` Hz (telephone or narrow-band speech)."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(samples.size, 1.0 / RATE)
    taper = np.clip((freqs - low * 0.8) / (low * 0.2 + 1e-9), 0.0, 1.0)
    taper *= np.clip((high * 1.15 - freqs) / (high * 0.15), 0.0, 1.0)
    return np.fft.irfft(spectrum * taper, n=samples.size).astype(np.float32)


def quantize(samples: np.ndarray) -> np.ndarray:
    """To int16 and back: the PCM the worker receives."""
    pcm: np.ndarray = np.round(np.clip(samples, -1.0, 1.0) * 32767.0)
    return pcm.astype(np.float32) / np.float32(32768.0)


def random_augment(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training draw: level ±20 dB always; noise and band-limiting sometimes."""
    out = samples
    if rng.random() < 0.3:
        low, high = [(300.0, 3400.0), (100.0, 4000.0), (50.0, 6000.0)][rng.integers(3)]
        out = band_limit(out, low, high)
    if rng.random() < 0.4:
        out = add_noise(out, float(rng.uniform(15.0, 35.0)), rng)
    return quantize(gain(out, float(rng.uniform(-20.0, 20.0))))
