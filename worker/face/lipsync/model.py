"""The network: log-mel → causal conv → GRU → articulation (7) and viseme logits (15).

It runs on the 10 ms hop. Its output at hop k describes the face 40 ms *before* the end
of the audio it has heard (``LAG_HOPS``): the 40 ms lookahead the issue allows, spent on
seeing a consonant's release before committing the lips.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import N_MELS, WINDOW, LogMel, frames_of

LAG_HOPS = 4
CONV_WIDTH = 3
CONV_CHANNELS = 64
HIDDEN = 128
N_PARAMS = 7
N_VISEMES = 15


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logmel = LogMel()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(N_MELS))
        self.register_buffer("std", torch.ones(N_MELS))
        self.conv = nn.Conv1d(N_MELS, CONV_CHANNELS, CONV_WIDTH)
        self.gru = nn.GRU(CONV_CHANNELS, HIDDEN, batch_first=True)
        self.params_head = nn.Linear(HIDDEN, N_PARAMS)
        self.viseme_head = nn.Linear(HIDDEN, N_VISEMES)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, WINDOW] → normalised log-mel [B, T, N_MELS]."""
        feats: torch.Tensor = (self.logmel(frames) - self.mean) / self.std
        return feats

    def silence(self, batch: int) -> torch.Tensor:
        """Conv context of a reset stream: the features of digital silence."""
        quiet = self.features(torch.zeros(1, 1, WINDOW))
        return quiet.expand(batch, CONV_WIDTH - 1, N_MELS).contiguous()

    def core(self, feats: torch.Tensor, context: torch.Tensor, hidden: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats [B, T, M] after ``context`` [B, CONV_WIDTH-1, M]; hidden [1, B, H].

        Returns per-hop params [B, T, 7] (0 … 1), viseme logits [B, T, 15] and the GRU
        outputs [B, T, H] (hidden state after each hop).
        """
        x = torch.cat([context, feats], dim=1).transpose(1, 2)
        x = torch.relu(self.conv(x)).transpose(1, 2)
        out, _ = self.gru(x, hidden)
        return torch.sigmoid(self.params_head(out)), self.viseme_head(out), out

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole clips [B, samples] from a reset state → per-hop params and logits."""
        feats = self.features(frames_of(audio))
        batch = audio.shape[0]
        context = self.silence(batch)
        hidden = torch.zeros(1, batch, HIDDEN)
        params, logits, _ = self.core(feats, context, hidden)
        return params, logits


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
