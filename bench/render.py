"""The avatar model's cost and capacity per tier, on this machine (torch on CPU).

    python -m bench.render [--tiers lite,standard,pro] [--seconds 6] [--no-encode]
                           [--process-defaults]

Per tier, all in this one process (the machine is shared and noisy, so every figure is
also given as a ratio against baselines measured in the same run, just before it):

* **baselines**: a plain copy of one output frame (``np.copy``), and the ``mock``
  renderer drawing a frame of the tier's size;
* **against today's renderer**: the same batch drawn by ``main``'s renderer, loaded beside
  this one (``bench.baseline``; ``--baseline REF``), timed interleaved with it: the ratio
  is the figure to trust when the machine is too loaded to show sustained capacity;
* **ms per frame**: the torch model rendering one session's frame alone (batch of 1),
  and batched (the tier's target session count in one call), median of repeated calls
  after a warm-up; the JPEG encode of one frame at the tier's quality, separately; the
  batch again beside a thread running pure Python (the GIL: as the worker's event loop
  does), compiled and with the kernel run eagerly (``worker.render_kernel``);
* **sessions sustained**: N sessions run for real on the worker's own code (Pipeline,
  the tier's FrameClock, the render thread) on the worker's event loop (uvloop) with its
  process settings (``worker.realtime``; ``--process-defaults`` runs without them, the
  baseline), each frame JPEG-encoded in the event loop as the relay transport does
  (``--no-encode`` leaves that out); N grows until more than 1 % of frames are late
  (dropped); the largest N under 1 % is reported;
* **lip-sync**: the model's r and lag per tier (``bench.lipsync``: speech-like signal,
  real speech, and a 4-frame-late control that must fail);
* **first lip-synced frame**: at the tier's target load, one session gets bursts of
  speech after silence at random phases of the frame grid; the time from the chunk
  reaching the pipeline to the send of the first frame that carries (and is drawn
  from) that speech.

Targets on 2 cores: lite >= 20 sessions, standard >= 8, pro >= 3; first lip-synced
frame <= 40 ms (issue 20).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import uvloop

from bench import baseline
from protoface.domain.tiers import TIERS, Tier
from protoface.worker import realtime
from protoface.worker.face.features import FaceParams
from protoface.worker.pipeline import Pipeline
from protoface.worker.render import kernel
from protoface.worker.render.batcher import BatchedRenderer, FrameClock
from protoface.worker.render.encode import jpeg
from protoface.worker.render.mock import MockRenderer
from protoface.worker.render.renderer import AvatarModel, TierModel, configure_threads
from protoface.worker.render.rig import STOCK_PORTRAITS, stock_asset
from protoface.worker.transports.port import (
    Closed,
    FrameOut,
    Inbound,
    Playback,
    SpeechIn,
    until_closed,
)

TARGETS = {"lite": 20, "standard": 8, "pro": 3}
STEPS = {"lite": (12, 16, 20, 24, 28, 32), "standard": (4, 6, 8, 10, 12),
         "pro": (1, 2, 3, 4)}
FIRST_FRAME_BUDGET_MS = 40


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``fn`` over ``repeat`` calls, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# ── Per-frame costs ─────────────────────────────────────────────────────────────


def against(tier: Tier, batch: list[tuple[AvatarModel, FaceParams]],
            model: TierModel, ref: str) -> tuple[float, float] | None:
    """(this, baseline) ms per frame of one batch, timed interleaved in rounds."""
    module = baseline.load(ref)
    if module is None:
        return None
    old = module.TierModel(tier)
    old_batch = [(old.avatar(stock_asset(a)), p) for a, (_, p) in
                 zip(sorted(STOCK_PORTRAITS) * len(batch), batch, strict=False)]
    ours, theirs = [], []
    for _ in range(5):
        ours.append(timed(lambda: model.render_many(batch), 3) / len(batch))
        theirs.append(timed(lambda: old.render_many(old_batch), 3) / len(batch))
    return statistics.median(ours), statistics.median(theirs)


def costs(tier: Tier, model: TierModel, avatars: list[AvatarModel]) -> dict[str, float]:
    frame = np.zeros((tier.height, tier.width, 3), np.uint8)
    mock = MockRenderer(tier.width, tier.height)
    batch = talking(tier, avatars)
    talk = [p for _, p in batch]
    out = {
        "copy": timed(lambda: np.copy(frame), 200),
        "mock": timed(lambda: mock.render(talk[:1]), 50),
        "single": timed(lambda: model.render_many(batch[:1]), 30),
        "batched": timed(lambda: model.render_many(batch), 10) / len(batch),
    }
    rendered = model.render_many(batch[:1])[0]
    out["jpeg"] = timed(lambda: jpeg(rendered, tier.jpeg_quality), 30)
    with python_thread():  # the GIL: the event loop's thread busy running Python
        out["batched_busy"] = timed(lambda: model.render_many(batch), 10) / len(batch)
        with eager():
            out["eager_busy"] = timed(lambda: model.render_many(batch), 3) / len(batch)
    return out


def talking(tier: Tier, avatars: list[AvatarModel]) -> list[tuple[AvatarModel, FaceParams]]:
    """The tier's target batch of talking frames, avatars mixed, every feature in use."""
    talk = [FaceParams(0.3 + 0.6 * (i % 3) / 2, True, blink=float(i % 7 == 3),
                       head_yaw=1.5, head_roll=-1.0, gaze_x=0.2, breath=0.5)
            for i in range(TARGETS[tier.name])]
    return [(avatars[i % len(avatars)], p) for i, p in enumerate(talk)]


@contextlib.contextmanager
def python_thread() -> Iterator[None]:
    """A second thread running pure Python (as the worker's event loop does between
    waits) for as long as the block runs."""
    stop = threading.Event()

    def spin() -> None:
        total = 0
        while not stop.is_set():
            for i in range(1_000):
                total += i

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """The model's kernel run eagerly (uncompiled), as it was before: the baseline."""
    compiled = kernel.render
    kernel.render = kernel._render
    try:
        yield
    finally:
        kernel.render = compiled


# ── Real-time sessions ──────────────────────────────────────────────────────────


@dataclass
class Sink:
    """A transport that only consumes: speech fed by the bench, frames encoded and counted."""

    tier: Tier
    encode: bool
    observes_audio: bool = True
    incoming: asyncio.Queue[Inbound] = field(default_factory=asyncio.Queue)
    ticks: int = 0
    shown: int = 0
    speech_at: float | None = None  # when the probe's burst was handed to the pipeline
    latencies: list[float] = field(default_factory=list)

    async def connect(self) -> None:
        return None

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for item in until_closed(self.incoming):
            yield item

    async def ready(self, info: dict[str, object]) -> None:
        return None

    async def send(self, frame: FrameOut) -> None:
        self.ticks += 1
        if self.speech_at is not None and frame.audio.any():  # the frame drawn from it
            if frame.frame is not None:
                self.latencies.append((time.perf_counter() - self.speech_at) * 1000)
            self.speech_at = None
        if frame.frame is not None:
            self.shown += 1
            if self.encode:
                jpeg(frame.frame, self.tier.jpeg_quality)

    def playback(self, event: Playback) -> None:
        return None

    async def error(self, code: str, message: str) -> None:
        return None

    async def close(self) -> None:
        return None


async def sustain(tier: Tier, model: TierModel, avatars: list[AvatarModel], sessions: int,
                  seconds: float, encode: bool, probe: bool = False) -> tuple[float, list[float]]:
    """Late share of frames with ``sessions`` running for ``seconds``; the probe's latencies."""
    clock = FrameClock(tier.fps, model.render_many, name=tier.name)
    sinks = [Sink(tier, encode) for _ in range(sessions)]
    talk = (np.sin(np.arange(16_000 * 60) * 0.07) * 9_000).astype(np.int16)
    for sink in sinks[1:] if probe else sinks:  # everyone talks; the probe waits for bursts
        await sink.incoming.put(SpeechIn(talk))
    pipelines = [Pipeline(s, BatchedRenderer(clock, avatars[i % len(avatars)], tier.width,
                                            tier.height, model.render_many), tier)
                 for i, s in enumerate(sinks)]
    stop = asyncio.Event()
    pumps = [asyncio.create_task(p.pump_inbound()) for p in pipelines]
    outputs = [asyncio.create_task(p.run_output(stop, drain_seconds=0.0)) for p in pipelines]
    await asyncio.sleep(0.5)  # warm-up: the first ticks align and fill the batch
    for s in sinks:
        s.ticks = s.shown = 0
    if probe:
        await _bursts(sinks[0], tier, seconds)
    else:
        await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*outputs)
    for s in sinks:
        await s.incoming.put(Closed())
    await asyncio.gather(*pumps)
    ticks = sum(s.ticks for s in sinks)
    return 1 - sum(s.shown for s in sinks) / max(1, ticks), sinks[0].latencies


async def _bursts(sink: Sink, tier: Tier, seconds: float) -> None:
    """Speech bursts of 200 ms, each after ≥ 300 ms of silence, at random grid phases."""
    rng = random.Random(7)
    burst = (np.sin(np.arange(3_200) * 0.07) * 9_000).astype(np.int16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.3 + rng.random() / tier.fps)
        sink.speech_at = time.perf_counter()
        await sink.incoming.put(SpeechIn(burst))
        await asyncio.sleep(0.2)


def capacity(tier: Tier, model: TierModel, avatars: list[AvatarModel], seconds: float,
             encode: bool) -> tuple[int, dict[int, float]]:
    late: dict[int, float] = {}
    best = 0
    for n in STEPS[tier.name]:
        late[n] = uvloop.run(sustain(tier, model, avatars, n, seconds, encode))[0]
        if late[n] >= 0.01:
            break
        best = n
    return best, late


# ── Report ──────────────────────────────────────────────────────────────────────


def report_tier(tier: Tier, seconds: float, encode: bool, ref: str) -> None:
    model = TierModel(tier)
    avatars = [model.avatar(stock_asset(a)) for a in sorted(STOCK_PORTRAITS)]
    c = costs(tier, model, avatars)
    target = TARGETS[tier.name]
    print(f"\n{tier.name}: {tier.width}×{tier.height} @ {tier.fps} fps, "
          f"{len(avatars)} avatars mixed in each batch")
    pair = against(tier, talking(tier, avatars), model, ref)
    if pair is not None:
        print(f"  against {ref:<8}{pair[0]:7.2f} ms/frame vs {pair[1]:.2f} ms/frame "
              f"(interleaved): {pair[0] / pair[1]:.2f}× today's per-frame cost")
    print(f"  baselines       frame copy {c['copy']:.3f} ms · mock renderer {c['mock']:.3f} ms")
    for key, label in (("single", "torch, alone"), ("batched", f"torch, batch of {target}"),
                       ("jpeg", f"JPEG q{tier.jpeg_quality}")):
        print(f"  {label:<16}{c[key]:7.2f} ms/frame  = {c[key] / c['mock']:6.1f}× mock, "
              f"{c[key] / c['copy']:7.0f}× copy")
    print(f"  beside Python   {c['batched_busy']:7.2f} ms/frame  = "
          f"{c['batched_busy'] / c['batched']:6.1f}× batched alone; the kernel run eagerly "
          f"{c['eager_busy']:.2f} ms/frame = {c['eager_busy'] / c['batched']:.1f}×")
    budget = 2 * 1000 / tier.fps  # two cores' worth of ms per frame period
    per_frame = c["batched"] + (c["jpeg"] if encode else 0.0)
    print(f"  compute bound   {budget / per_frame:.0f} sessions (2 cores, render"
          f"{' + JPEG' if encode else ''} {per_frame:.2f} ms/frame)")
    best, late = capacity(tier, model, avatars, seconds, encode)
    trials = ", ".join(f"{n}: {share:.2%}" for n, share in late.items())
    verdict = "meets" if best >= target else "MISSES"
    print(f"  sustained       {best} sessions with < 1 % late frames ({verdict} target "
          f"{target}; late share by sessions — {trials})")
    _, latencies = uvloop.run(sustain(tier, model, avatars, max(1, target), seconds, encode,
                                       probe=True))
    if latencies:
        latencies.sort()
        worst = latencies[-1]
        print(f"  first lip-synced frame after the audio reaches the worker "
              f"({len(latencies)} bursts at load {target}): median "
              f"{statistics.median(latencies):.1f} ms, max {worst:.1f} ms "
              f"({'within' if worst <= FIRST_FRAME_BUDGET_MS else 'OVER'} "
              f"{FIRST_FRAME_BUDGET_MS} ms)")


def report_lipsync(args: argparse.Namespace) -> None:
    """Per tier, the model's lip-sync score from its own pixels (``bench.lipsync``): on a
    speech-like signal and on real speech, and a 4-frame-late control that must fail."""
    from bench import lipsync as bench_lipsync  # torch-free until here; reuses its signals

    speech = bench_lipsync.signals()
    chosen = ("speech-like: vowel syllables (12 s)", "greeting.wav", "numbers.wav")
    print("\nlip-sync (r ≥ 0.5, lag in [−40, +80] ms; from the rendered mouth's pixels)")
    for name in args.tiers.split(","):
        tier = TIERS[name]
        rows = [bench_lipsync.measure(signal, speech[signal], tier, "model")
                for signal in chosen]
        rows.append(bench_lipsync.measure("greeting.wav", speech["greeting.wav"], tier,
                                          "model", delay=4))
        for row in rows:
            print(f"  {name:9} {row.signal:38} r={row.r:+.3f}  lag={row.lag_ms:+6.1f} ms  "
                  f"{'pass' if row.passes else 'FAIL'}")


# Each entry is called once with the parsed arguments after the tiers.
EXTRA_REPORTS: list[Callable[[argparse.Namespace], None]] = [report_lipsync]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiers", default="lite,standard,pro")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--no-encode", action="store_true")
    parser.add_argument("--baseline", default="main",
                        help="the git ref whose renderer the per-frame cost is compared with")
    parser.add_argument("--process-defaults", action="store_true",
                        help="leave CPython's and glibc's defaults (no worker.realtime.prepare)")
    args = parser.parse_args()
    threads = configure_threads()
    if not args.process_defaults:
        realtime.prepare()  # the worker's own process settings
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {threads} intra-op thread(s) on the render thread; "
          f"event loop + JPEG on the main thread; load average {load} on "
          f"{os.cpu_count()} cores; process settings: "
          f"{'defaults' if args.process_defaults else 'the worker’s (worker.realtime)'}")
    for name in args.tiers.split(","):
        report_tier(TIERS[name], args.seconds, not args.no_encode, args.baseline)
    for extra in EXTRA_REPORTS:
        extra(args)


if __name__ == "__main__":
    main()
