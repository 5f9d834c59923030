"""Log-mel features on a fixed 10 ms hop, causal: hop k sees only audio up to its end.

Hop k is the 25 ms window ending at sample 160·(k+1), so a stream fed in pieces of any
size gives the same hops as the whole clip at once (the last 240 samples and the
remainder are carried between pieces by the caller).
"""

from __future__ import annotations

import math

import numpy as np
import torch

RATE = 16_000
HOP = 160
WINDOW = 400
HISTORY = WINDOW - HOP  # samples a new hop needs from before its own 10 ms
N_FFT = 512
N_MELS = 40
LOG_FLOOR = 1e-6


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_filterbank(n_mels: int = N_MELS, low: float = 60.0, high: float = 7600.0) -> np.ndarray:
    """Triangular filters [N_FFT // 2 + 1, n_mels], equal area (slaney-style)."""
    edges_mel = np.linspace(_mel(np.array(low)), _mel(np.array(high)), n_mels + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    bank = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        bank[:, m] = np.clip(np.minimum(rise, fall), 0.0, None) * 2.0 / (hi - lo)
    return bank


class LogMel(torch.nn.Module):
    """Frames [..., WINDOW] (float, −1 … 1) → log-mel [..., N_MELS]."""

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(WINDOW, dtype=torch.float64)
        window = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / WINDOW)
        self.window: torch.Tensor
        self.bank: torch.Tensor
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("bank", torch.from_numpy(mel_filterbank()).float(),
                             persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(frames * self.window, n=N_FFT)
        power = torch.view_as_real(spectrum).square().sum(-1)
        return torch.log(power @ self.bank + LOG_FLOOR)


def frames_of(audio: torch.Tensor) -> torch.Tensor:
    """Causal hops of a batch of clips [B, samples] → [B, hops, WINDOW] (zeros before 0)."""
    padded = torch.nn.functional.pad(audio, (HISTORY, 0))
    hops = audio.shape[-1] // HOP
    return padded[..., : HISTORY + hops * HOP].unfold(-1, WINDOW, HOP)
