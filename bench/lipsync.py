"""Lip-sync score per signal and tier: r and the audio–video lag, from rendered pixels.

    python -m bench.lipsync [--tiers mock,lite,standard,pro] [--renderers mock,model] [--json]

For each signal — two speech-like synthetics (vowels in syllables at ≈ 4 Hz with pauses;
noise amplitude-modulated at 3–6 Hz) and each real utterance in ``tests/data/speech`` —
and each tier, the offline chain (``worker.offline.drive``: ``FaceDriver`` with its 40 ms
lookahead → renderer) renders the frames, and ``worker.lipsync.score`` measures the
mouth from the pixels inside the renderer's mouth box: Pearson r of the 2–7 Hz speech
envelope and mouth opening at zero lag, and the lag of the cross-correlation peak
(positive: video later than audio).
Targets: r ≥ 0.5, lag in [−40, +80] ms. A control row delays the video by 4 frames;
it must fail. Also the driver's cost per frame.

A renderer plugs in as one entry of ``RENDERERS`` (asset, tier, seed → a renderer with
``render(batch)`` and ``mouth_box``); stock avatar ``av_stock_001`` provides the asset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from protoface.domain.tiers import TIERS, Tier
from protoface.worker import offline
from protoface.worker.face import sync_score
from protoface.worker.face.features import FaceDriver
from protoface.worker.render.rig import stock_asset
from tests.worker import speechlike

SPEECH_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech"
AVATAR = "av_stock_001"
SEED = 1
CONTROL_DELAY_FRAMES = 4
RENDERERS: dict[str, offline.RendererFactory] = {
    "mock": offline.mock_renderer, "model": offline.model_renderer}


@dataclass(frozen=True, slots=True)
class Row:
    signal: str
    tier: str
    renderer: str
    seconds: float
    r: float
    lag_ms: float
    peak_r: float
    passes: bool


def signals() -> dict[str, np.ndarray]:
    found = {"speech-like: vowel syllables (12 s)": speechlike.syllables(12.0, seed=1),
             "speech-like: AM noise (12 s)": speechlike.am_noise(12.0, seed=1)}
    for path in sorted(SPEECH_DIR.glob("*.wav")):
        found[path.name] = offline.read_speech(path)
    return found


def measure(name: str, samples: np.ndarray, tier: Tier, renderer_name: str,
            *, delay: int = 0) -> Row:
    renderer = RENDERERS[renderer_name](stock_asset(AVATAR), tier, SEED)
    frames = [item.frame for item in offline.drive(samples, tier, renderer, SEED)]
    frames = [frames[0]] * delay + frames[: len(frames) - delay]
    result = sync_score.score(samples, frames, renderer.mouth_box, tier.fps, tier.samples_per_frame)
    label = f"{name} (video +{delay} frames)" if delay else name
    return Row(label, tier.name, renderer_name, samples.size / 16_000, round(result.r, 3),
               round(result.lag_ms, 1), round(result.peak_r, 3), result.passes())


def driver_ms_per_frame(samples: np.ndarray, fps: int) -> float:
    driver = FaceDriver(seed=SEED, fps=fps)
    step = driver.samples_per_frame
    started = time.perf_counter()
    count = 0
    for i in range(0, samples.size - 2 * step, step):
        driver.step(samples[i : i + step], samples[i + step : i + step + driver.lookahead_samples])
        count += 1
    return (time.perf_counter() - started) / count * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lipsync", description=__doc__.split("\n")[0])
    parser.add_argument("--tiers", default="mock,lite,standard,pro")
    parser.add_argument("--renderers", default=",".join(RENDERERS))
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    speech = signals()
    for renderer_name in args.renderers.split(","):
        for tier_name in args.tiers.split(","):
            tier = TIERS[tier_name]
            if renderer_name == "model" and tier.name == "mock":
                continue  # the mock tier is the test pattern, not the model
            rows += [measure(n, s, tier, renderer_name) for n, s in speech.items()]
            rows.append(measure("greeting.wav", speech["greeting.wav"], tier, renderer_name,
                                delay=CONTROL_DELAY_FRAMES))
    for row in rows:
        print(json.dumps(asdict(row)) if args.json else
              f"{row.renderer:8} {row.tier:9} {row.signal:36} {row.seconds:5.1f} s  "
              f"r={row.r:+.3f}  lag={row.lag_ms:+6.1f} ms  peak r={row.peak_r:+.3f}  "
              f"{'pass' if row.passes else 'FAIL'}")
    for fps in sorted({TIERS[t].fps for t in args.tiers.split(",")}):
        cost = driver_ms_per_frame(speech["greeting.wav"], fps)
        print(f"FaceDriver at {fps} fps: {cost:.2f} ms per frame (one core)")
    controls_fail = all(not r.passes for r in rows if "video +" in r.signal)
    return 0 if controls_fail and all(r.passes for r in rows if "video +" not in r.signal) else 1


if __name__ == "__main__":
    sys.exit(main())
