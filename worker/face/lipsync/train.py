"""Train the lip-sync model: ``python -m protoface.worker.face.lipsync.train [--steps N]``.

Builds the data set first if ``.cache/lipsync`` lacks it, then trains on random 3 s crops
of the training clips (a crop starts the network from a reset state anywhere, even
mid-word: that is what an interruption does), each crop freshly augmented. Seeds are
fixed; CPU only, one thread by default. Writes ``weights.pt`` next to this module.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import augment, dataset
from .dataset import Clip
from .features import HOP
from .model import LAG_HOPS, Net, parameter_count

WEIGHTS = Path(__file__).parent / "weights.pt"
CROP_HOPS = 300
BATCH = 32
LR = 3e-3
PARAM_WEIGHT = torch.tensor([2.0, 3.0, 1.0, 1.0, 0.5, 1.0, 0.5])
VISEME_WEIGHT = 0.3


def _crop(clip: Clip, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hop-aligned crop: audio, and the labels each output hop must give (lagged)."""
    hops = clip.visemes.size
    start = int(rng.integers(0, max(1, hops - CROP_HOPS // 2)))
    audio = np.zeros(CROP_HOPS * HOP, np.float32)
    piece = clip.audio[start * HOP : (start + CROP_HOPS) * HOP]
    audio[: piece.size] = piece
    # Output hop k describes label hop k − LAG_HOPS: pad the labels on the left.
    params = np.zeros((hops + LAG_HOPS + CROP_HOPS, 7), np.float32)
    params[LAG_HOPS : LAG_HOPS + hops] = clip.params
    visemes = np.zeros(hops + LAG_HOPS + CROP_HOPS, np.int64)
    visemes[LAG_HOPS : LAG_HOPS + hops] = clip.visemes
    return (augment.random_augment(audio, rng), params[start : start + CROP_HOPS],
            visemes[start : start + CROP_HOPS])


def batch(clips: list[Clip], rng: np.random.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    picks = [_crop(clips[int(i)], rng) for i in rng.integers(0, len(clips), BATCH)]
    return tuple(torch.from_numpy(np.stack(x)) for x in zip(*picks, strict=True))  # type: ignore[return-value]


def loss_of(net: Net, audio: torch.Tensor, params: torch.Tensor, visemes: torch.Tensor
            ) -> torch.Tensor:
    out, logits = net(audio)
    regress = torch.nn.functional.smooth_l1_loss(out, params, reduction="none", beta=0.1)
    classify = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 visemes.reshape(-1))
    return (regress * PARAM_WEIGHT).mean() * 10.0 + VISEME_WEIGHT * classify


def normalise(net: Net, clips: list[Clip]) -> None:
    """Per-band mean and spread of the log-mel over clean training speech."""
    audio = torch.from_numpy(np.concatenate([c.audio for c in clips[::10]]))[None]
    with torch.no_grad():
        from .features import frames_of

        feats = net.logmel(frames_of(audio))[0]
    net.mean.copy_(feats.mean(0))
    net.std.copy_(feats.std(0) + 1e-3)


def train(steps: int, threads: int, checkpoint: Path | None = None) -> Net:
    torch.set_num_threads(threads)
    torch.manual_seed(dataset.SEED)
    rng = np.random.default_rng(dataset.SEED)
    if not (dataset.CACHE / "train.npz").exists():
        dataset.main()
    clips = dataset.load(dataset.CACHE / "train.npz")
    net = Net()
    normalise(net, clips)
    print(f"{parameter_count(net)} parameters, {len(clips)} clips", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    began = time.monotonic()
    for step in range(steps):
        for group in opt.param_groups:  # cosine decay to 3 % of the peak
            group["lr"] = LR * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        loss = loss_of(net, *batch(clips, rng))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.monotonic() - began:.0f} s",
                  flush=True)
        if checkpoint is not None and step % 500 == 499:
            torch.save(net.state_dict(), checkpoint)  # to evaluate while it trains
    return net


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3500)  # the committed weights' run
    # One thread: what the committed weights were trained with (another thread count may
    # change float rounding, so the weights would differ in their last bits).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    net = train(args.steps, args.threads, args.out.with_suffix(".partial.pt"))
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
