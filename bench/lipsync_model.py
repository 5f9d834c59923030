"""Cost and held-out quality of the learned lip-sync model.

    python -m bench.lipsync_model [--sessions 20] [--ticks 300] [--no-eval]

Cost: one batched ``LipSync.step_frames`` per 25 fps tick for ``--sessions`` sessions
(each speaking a test clip, staggered), on one torch thread; printed per session-frame
with its ratio to a baseline in the same process (a plain [B, 128] × [128, 384] matmul,
the size of one GRU gate product, so the ratio carries across machines). Target
≤ 0.3 ms per session-frame at 20 sessions.

Quality: ``protoface.worker.face.lipsync.evaluate`` on the held-out set (the cache built by
``python -m protoface.worker.face.lipsync.dataset``; without it, the clips in tests/data/lipsync).
"""

from __future__ import annotations

import argparse
import time
import wave
from pathlib import Path

import numpy as np
import torch

from protoface.worker.face.lipsync import dataset, evaluate
from protoface.worker.face.lipsync.model import parameter_count
from protoface.worker.face.lipsync.stream import LOOKAHEAD, LipSync

SPEECH = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech"
FPS = 25
SPF = 16_000 // FPS


def _speech() -> np.ndarray:
    parts = []
    for path in sorted(SPEECH.glob("*.wav")):
        with wave.open(str(path), "rb") as f:
            parts.append(np.frombuffer(f.readframes(f.getnframes()), "<i2"))
    return np.concatenate(parts)


def cost(model: LipSync, sessions: int, ticks: int) -> float:
    """Seconds per tick (all sessions), the median of ``ticks`` after a warm-up."""
    speech = _speech()
    offsets = [(i * 7919 * SPF) % (speech.size - (ticks + 2) * SPF) for i in range(sessions)]
    states = [model.new_state() for _ in range(sessions)]
    times = []
    for n in range(ticks + 10):
        chunks = [speech[o + n * SPF : o + (n + 1) * SPF] for o in offsets]
        ahead = [speech[o + (n + 1) * SPF : o + (n + 1) * SPF + LOOKAHEAD] for o in offsets]
        began = time.perf_counter()
        _, _, states = model.step_frames(states, chunks, ahead)
        times.append(time.perf_counter() - began)
    return float(np.median(times[10:]))


def baseline(sessions: int, repeats: int = 2000) -> float:
    """Seconds per plain matmul of the same batch."""
    a, w = torch.randn(sessions, 128), torch.randn(128, 384)
    for _ in range(100):
        torch.mm(a, w)
    began = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, w)
    return (time.perf_counter() - began) / repeats


def quality(model: LipSync) -> None:
    cache = dataset.CACHE / "heldout.npz"
    if cache.exists():
        clips = [(c.audio, c.segments) for c in dataset.load(cache)]
    else:
        from tests.worker.face.lipsync_clips import heldout_clips

        clips = heldout_clips()
    for fps in (25, 30):
        scores = evaluate.score(evaluate.run(model, clips, fps))
        evaluate.print_scores(f"held out, {len(clips)} clips, {fps} fps", scores)
        print("  viseme recall per class:", " ".join(
            f"{name} {recall:.2f}" for name, recall in scores.per_class.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--no-eval", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = LipSync()
    tick, base = cost(model, args.sessions, args.ticks), baseline(args.sessions)
    per = tick / args.sessions
    print(f"parameters {parameter_count(model.net)}")
    print(f"tick of {args.sessions} sessions {tick * 1e3:.3f} ms; per session-frame "
          f"{per * 1e3:.4f} ms (target ≤ 0.3); baseline matmul {base * 1e6:.1f} µs; "
          f"ratio per session-frame / baseline {per / base:.1f}")
    if not args.no_eval:
        quality(model)


if __name__ == "__main__":
    main()
