"""Streaming lip-sync for many sessions: one batched call per video tick.

Each session owns a ``State`` (GRU hidden state, conv context, the audio not yet turned
into a hop, how far past the current frame it has already been fed). Per tick the worker
gathers every session's frame chunk and lookahead (``SpeechQueue.take`` / ``peek``) and
calls ``LipSync.step_frames`` once; an interrupt replaces the session's state with
``LipSync.new_state()``.

Timing: the network describes the face 40 ms before the end of what it has heard. A
tick feeds the stream up to the frame's end plus its lookahead (≤ 40 ms), so the hops
completed in that tick describe the frame's own interval; they are pooled into the
frame (closure by max, so a brief /p/ is never lost; the rest by mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .features import HISTORY, HOP, WINDOW
from .model import CONV_WIDTH, HIDDEN, N_PARAMS, N_VISEMES, Net
from .phones import PRESS, SIL

WEIGHTS = Path(__file__).parent / "weights.pt"
LOOKAHEAD = 640  # 40 ms at 16 kHz: what the model may hear beyond a frame
# Float results of a matmul can depend on its shape (BLAS picks kernels by size), so a
# session's numbers would change with the number of sessions beside it. Padding every
# call to a bucketed shape (rows: multiples of 8; hops: multiples of 4) makes a session's
# frames bit-identical alone or in any batch (measured: tests/worker/face).
ROW_BUCKET = 8
HOP_BUCKET = 4


@dataclass(frozen=True, slots=True)
class State:
    """One session's carried state; immutable, so a tick can be retried or compared."""

    hidden: torch.Tensor  # [HIDDEN]
    context: torch.Tensor  # [CONV_WIDTH - 1, N_MELS] features of the last hops
    tail: np.ndarray  # float32: the last HISTORY samples, then the < HOP not yet a hop
    ahead: int  # samples already fed beyond the start of the next frame
    params: np.ndarray  # float32 [7]: the last frame's output (kept if a tick adds no hop)
    visemes: np.ndarray  # float32 [15]


def _rest() -> tuple[np.ndarray, np.ndarray]:
    visemes = np.zeros(N_VISEMES, np.float32)
    visemes[SIL] = 1.0
    return np.zeros(N_PARAMS, np.float32), visemes


class LipSync:
    """The trained network, shared by every session of a worker (read-only)."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        self.net = Net()
        self.net.load_state_dict(torch.load(weights, weights_only=True))
        self.net.eval()
        with torch.no_grad():
            self._silence = self.net.silence(1)[0]

    def new_state(self) -> State:
        """A session's first state, and its state after an interrupt (a closed mouth)."""
        params, visemes = _rest()
        return State(torch.zeros(HIDDEN), self._silence.clone(),
                     np.zeros(HISTORY, np.float32), 0, params, visemes)

    def step_frames(self, states: Sequence[State], chunks: Sequence[np.ndarray],
                    lookaheads: Sequence[np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray, list[State]]:
        """One video frame for every session: its int16 chunk and lookahead (any length;
        only the first 40 ms is used). Returns params [B, 7], viseme probabilities
        [B, 15] and the new states."""
        fresh, moved = [], []
        for state, chunk, ahead in zip(states, chunks, lookaheads, strict=True):
            stream = np.concatenate([chunk, ahead[:LOOKAHEAD]])
            fresh.append(stream[state.ahead:])
            # How far past the next frame's start the stream has now been fed.
            moved.append(max(0, max(state.ahead, stream.size) - chunk.size))
        params, visemes, new = self.step(states, fresh)
        return params, visemes, [_with_ahead(s, a) for s, a in zip(new, moved, strict=True)]

    @torch.no_grad()
    def step(self, states: Sequence[State], audio: Sequence[np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray, list[State]]:
        """Feed each session the next samples of its stream (int16, any lengths)."""
        buffers = [np.concatenate([s.tail, a.astype(np.float32) / 32768.0])
                   for s, a in zip(states, audio, strict=True)]
        hops = [(b.size - HISTORY) // HOP for b in buffers]
        most = max(hops, default=0)
        if most == 0:
            return _unchanged(states, buffers)
        rows = -(-len(states) // ROW_BUCKET) * ROW_BUCKET
        frames = torch.zeros(rows, -(-most // HOP_BUCKET) * HOP_BUCKET, WINDOW)
        for row, (buf, n) in enumerate(zip(buffers, hops, strict=True)):
            if n:
                frames[row, :n] = torch.from_numpy(buf[: HISTORY + n * HOP]).unfold(0, WINDOW, HOP)
        feats = self.net.features(frames)
        spare = rows - len(states)
        context = torch.stack([s.context for s in states] + [self._silence] * spare)
        hidden = torch.stack([s.hidden for s in states] + [torch.zeros(HIDDEN)] * spare)[None]
        params, logits, outs = self.net.core(feats, context, hidden)
        probs = torch.softmax(logits, dim=-1)
        return _gather(states, buffers, hops, feats, context, params, probs, outs)


def _pool(params: torch.Tensor, probs: torch.Tensor, hops: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's first ``hops`` hops → one frame: closure by max, the rest by mean."""
    mask = torch.arange(params.shape[1])[None, :] < hops[:, None]
    weight = mask[..., None].to(params.dtype)
    count = hops.clamp(min=1)[:, None].to(params.dtype)
    pooled = (params * weight).sum(1) / count
    pooled[:, PRESS] = torch.where(mask, params[..., PRESS], -1.0).max(1).values
    return pooled, (probs * weight).sum(1) / count


def _gather(states: Sequence[State], buffers: list[np.ndarray], hop_list: list[int],
            feats: torch.Tensor, context: torch.Tensor, params: torch.Tensor,
            probs: torch.Tensor, outs: torch.Tensor
            ) -> tuple[np.ndarray, np.ndarray, list[State]]:
    """The frame of every session and its next state, read out of the padded batch."""
    size = len(states)
    hops = torch.tensor(hop_list)
    pooled, visemes = (x.numpy() for x in _pool(params[:size], probs[:size], hops))
    rows = torch.arange(size)
    hidden = outs[rows, (hops - 1).clamp(min=0)]
    # The conv's next context: the last CONV_WIDTH − 1 feature rows heard so far.
    heard = torch.cat([context[:size], feats[:size]], dim=1)
    last = heard[rows[:, None], hops[:, None] + torch.arange(CONV_WIDTH - 1)[None, :]]
    out_p, out_v, new = [], [], []
    for row, (state, buf, n) in enumerate(zip(states, buffers, hop_list, strict=True)):
        if n == 0:  # nothing completed: the frame and the network state stay as they were
            out_p.append(state.params)
            out_v.append(state.visemes)
            new.append(_with_tail(state, buf))
            continue
        p, v = pooled[row].copy(), visemes[row].copy()
        new.append(State(hidden[row].clone(), last[row].clone(), buf[n * HOP:].copy(),
                         state.ahead, p, v))
        out_p.append(p)
        out_v.append(v)
    return np.stack(out_p), np.stack(out_v), new


def _unchanged(states: Sequence[State], buffers: list[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, list[State]]:
    if not states:
        return np.zeros((0, N_PARAMS), np.float32), np.zeros((0, N_VISEMES), np.float32), []
    return (np.stack([s.params for s in states]), np.stack([s.visemes for s in states]),
            [_with_tail(s, b) for s, b in zip(states, buffers, strict=True)])


def _with_tail(state: State, buffer: np.ndarray) -> State:
    return State(state.hidden, state.context, buffer.copy(), state.ahead, state.params,
                 state.visemes)


def _with_ahead(state: State, ahead: int) -> State:
    return State(state.hidden, state.context, state.tail, ahead, state.params, state.visemes)
