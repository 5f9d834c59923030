"""A worker filled to what admission allows, per tier and in a mix: does it keep time?

    python -m bench.admission [--tiers lite,standard,pro] [--seconds 4] [--mix lite,standard,pro]

The worker's own probe (``worker.capacity.probe``, as ``protoface worker`` runs it at
start) costs each tier on this machine; admission (``domain.capacity`` room, checked by
the API's ``Capacity`` as a create would be) decides how many sessions of a tier fit in
an idle worker, and how many of each tier of a mix fit when they arrive in turn. Those
sessions then run for real on the worker's code (``bench.render.sustain``'s pipelines,
the tiers' frame clocks, the render thread, JPEG in the event loop), all tiers of a mix
at once; the late share per tier is printed (target: < 1 %), and the next create of
each tier is put to admission (target: 503 ``at_capacity``). Admitted counts are
printed beside the flat 4 slots a worker had before capacity by cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import uvloop

from bench.render import Sink
from protoface.api.capacity import Capacity
from protoface.domain import capacity as cost
from protoface.domain.errors import Rejected
from protoface.domain.tiers import TIERS
from protoface.streams.work import WorkerInfo
from protoface.worker import realtime
from protoface.worker.capacity.probe import probe
from protoface.worker.pipeline import Pipeline
from protoface.worker.render.batcher import BatchedRenderer, FrameClock
from protoface.worker.render.renderer import AvatarModel, TierModel, tier_model
from protoface.worker.render.rig import STOCK_PORTRAITS, stock_asset

FLAT_SLOTS = 4  # what a worker admitted before, whatever the tier
SLOTS = 64  # --slots default: an upper bound only


def admit(costs: dict[str, float], arrivals: list[str]) -> dict[str, int]:
    """Sessions admitted into an idle worker as creates arrive in ``arrivals``' order,
    round after round, until none of them fits."""
    admitted = dict.fromkeys(arrivals, 0)
    used, placed = 0.0, 0
    while True:
        progress = False
        for tier in arrivals:
            if cost.fits(costs, cost.CAPACITY_UNITS, used, SLOTS - placed, tier):
                admitted[tier] += 1
                used, placed, progress = used + costs[tier], placed + 1, True
        if not progress:
            return admitted


def next_create_refused(costs: dict[str, float], admitted: dict[str, int], tier: str) -> bool:
    """Whether the API refuses (503 at_capacity) one more session of ``tier``."""
    used = sum(costs[t] * n for t, n in admitted.items())
    placed = sum(admitted.values())
    info = WorkerInfo(worker_id="wrk_bench", slots=SLOTS, free=SLOTS - placed,
                      capacity=cost.CAPACITY_UNITS, used=used, costs=costs,
                      room=cost.room(costs, cost.CAPACITY_UNITS, used, SLOTS - placed))
    capacity = Capacity(heartbeat_seconds=5.0, policy="reject")
    capacity.workers[info.worker_id] = (info, time.monotonic())
    try:
        capacity.check(tier)
    except Rejected as refused:
        return refused.code == "at_capacity"
    return False


async def sustain_mix(plan: dict[str, int], models: dict[str, tuple[TierModel, list[AvatarModel]]],
                      seconds: float) -> dict[str, float]:
    """Late share of frames per tier with ``plan[tier]`` sessions of each running at once."""
    import numpy as np

    from protoface.worker.transports.port import Closed, SpeechIn

    talk = (np.sin(np.arange(16_000 * 60) * 0.07) * 9_000).astype(np.int16)
    runs: list[tuple[str, Sink, Pipeline]] = []
    for name, n in plan.items():
        tier, (model, avatars) = TIERS[name], models[name]
        clock = FrameClock(tier.fps, model.render_many, name=name)
        for i in range(n):
            sink = Sink(tier, encode=True)
            await sink.incoming.put(SpeechIn(talk))
            renderer = BatchedRenderer(clock, avatars[i % len(avatars)], tier.width,
                                      tier.height, model.render_many)
            runs.append((name, sink, Pipeline(sink, renderer, tier)))
    stop = asyncio.Event()
    pumps = [asyncio.create_task(p.pump_inbound()) for _, _, p in runs]
    outputs = [asyncio.create_task(p.run_output(stop, drain_seconds=0.0)) for _, _, p in runs]
    await asyncio.sleep(0.5)  # warm-up: the first ticks align and fill the batches
    for _, sink, _ in runs:
        sink.ticks = sink.shown = 0
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*outputs)
    for _, sink, _ in runs:
        await sink.incoming.put(Closed())
    await asyncio.gather(*pumps)
    late: dict[str, float] = {}
    for name in plan:
        sinks = [s for t, s, _ in runs if t == name]
        late[name] = 1 - sum(s.shown for s in sinks) / max(1, sum(s.ticks for s in sinks))
    return late


def report(plan: dict[str, int], costs: dict[str, float],
           models: dict[str, tuple[TierModel, list[AvatarModel]]], seconds: float,
           label: str) -> bool:
    # A first short run warms the compiled kernel at this plan's batch sizes (TorchScript
    # re-optimises for each new one), as a worker's first minutes at a new load do.
    uvloop.run(sustain_mix(plan, models, 1.0))
    late = uvloop.run(sustain_mix(plan, models, seconds))
    ok = True
    for name, n in plan.items():
        if n == 0:
            print(f"  {label:<22}{name:<9} admitted   0 (the others took the room)")
            continue
        refused = next_create_refused(costs, plan, name)
        ok &= late[name] < 0.01 and refused
        print(f"  {label:<22}{name:<9} admitted {n:3d} = {n / FLAT_SLOTS:4.1f}× the flat "
              f"{FLAT_SLOTS}   late {late[name]:6.2%} "
              f"({'real time' if late[name] < 0.01 else 'LATE'})   next create: "
              f"{'503 at_capacity' if refused else 'ADMITTED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiers", default="lite,standard,pro")
    parser.add_argument("--mix", default="lite,standard,pro")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    realtime.prepare()
    names = sorted(set(args.tiers.split(",")) | set(args.mix.split(",")),
                   key=lambda t: TIERS[t].width * TIERS[t].height)
    started = time.monotonic()
    costs = probe(names)
    probed = time.monotonic() - started
    models = {n: (tier_model(TIERS[n]), [tier_model(TIERS[n]).avatar(stock_asset(a))
                                         for a in sorted(STOCK_PORTRAITS)]) for n in names}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"probe {probed:.2f} s: " + ", ".join(f"{n} {costs[n]:.1f}" for n in names)
          + f" units a session; capacity {cost.CAPACITY_UNITS:.0f} units; load {load} on "
          f"{os.cpu_count()} cores")
    ok = True
    for name in args.tiers.split(","):
        ok &= report(admit(costs, [name]), costs, models, args.seconds, "alone")
    mix = args.mix.split(",")
    ok &= report(admit(costs, mix), costs, models, args.seconds, "mix " + "+".join(mix))
    print("every admitted session real time and the next refused" if ok else "MISSED")


if __name__ == "__main__":
    main()
