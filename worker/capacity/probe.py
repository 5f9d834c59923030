"""What a session of each tier costs this worker, measured on its own renderer at start.

Per tier, one frame's time as a session pays it every tick: a batched render on the
worker's model (a stock avatar, the tier's geometry), the JPEG encode the transport
does, and the face driver step on the event loop. Each time is the fastest of a few
calls after a warm-up (which also warms the tier for the first real session): other
work on the machine only ever adds time, so the fastest is the worker's own cost (the
median swung 2–3× with a neighbour's load); load that persists is what the overload
guard (``overload``) sees in the late frames. The probe is
bounded by ``budget_seconds``: a tier measured late keeps the costliest estimate yet
(its pinned figure, if the operator gave one, wins anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np

from protoface.domain.avatar import STOCK_AVATARS
from protoface.domain.capacity import session_cost
from protoface.domain.tiers import TIERS, Tier
from protoface.worker.face.features import FaceDriver, FaceParams
from protoface.worker.render.encode import jpeg
from protoface.worker.render.mock import MockRenderer
from protoface.worker.render.renderer import tier_model
from protoface.worker.render.rig import stock_asset

log = logging.getLogger("protoface.worker.capacity")

# Frames per probe batch: a worker batches a tier's sessions; a few frames per call
# measure the batched cost without paying for a big batch on the slow tiers.
PROBE_BATCH = 4
REPEATS = 5


def probe(tiers: Iterable[str], budget_seconds: float = 2.0) -> dict[str, float]:
    """Cost units of one session of each of ``tiers`` on this worker."""
    started = time.monotonic()
    deadline = started + budget_seconds
    costs: dict[str, float] = {}
    for name in sorted(tiers, key=lambda t: TIERS[t].width * TIERS[t].height):
        tier = TIERS[name]
        if time.monotonic() > deadline and costs:
            # Out of time: a bigger tier costs at least the biggest measured, by area.
            costs[name] = _scaled(costs, tier)
            log.warning("capacity probe out of time; tier estimated by area",
                        extra={"quality": name, "cost": costs[name]})
            continue
        costs[name] = session_cost(frame_ms(tier), tier.fps)
    log.info("capacity probed", extra={
        "costs": costs, "seconds": round(time.monotonic() - started, 2)})
    return costs


def frame_ms(tier: Tier) -> float:
    """Milliseconds of this worker per frame of one session of ``tier``."""
    params = [FaceParams(0.3 + 0.2 * i, True, blink=float(i == 1), head_yaw=1.0)
              for i in range(PROBE_BATCH)]
    render = _renderer(tier, params)
    frame = render()[0] if tier.name != "mock" else np.zeros((tier.height, tier.width, 3),
                                                               np.uint8)
    return (_median_ms(render) / PROBE_BATCH + _median_ms(lambda: jpeg(frame, tier.jpeg_quality))
            + _median_ms(face_driver_tick(tier)) / PROBE_BATCH)


def _renderer(tier: Tier, params: list[FaceParams]) -> Callable[[], list[np.ndarray]]:
    if tier.name == "mock":
        mock = MockRenderer(tier.width, tier.height)
        return lambda: mock.render(params)
    model = tier_model(tier)  # the worker's own model of the tier: warmed for sessions too
    avatar = model.avatar(stock_asset(next(iter(STOCK_AVATARS))))
    batch = [(avatar, p) for p in params]
    return lambda: model.render_many(batch)


def face_driver_tick(tier: Tier) -> Callable[[], None]:
    """One tick of ``PROBE_BATCH`` sessions' face drivers, as the worker runs them: one
    lip-sync call for the batch (``SpeechBatch``), then each session's frame. Stepping
    one driver alone would cost a lite session ~4× what it pays in a batch."""
    drivers = [FaceDriver(fps=tier.fps) for _ in range(PROBE_BATCH)]
    model = drivers[0].model
    speech = (np.sin(np.arange(tier.samples_per_frame) * 0.07) * 9_000).astype(np.int16)
    ahead = np.zeros(0, np.int16)

    def tick() -> None:
        params, visemes, states = model.step_frames(
            [d.state for d in drivers], [speech] * PROBE_BATCH, [ahead] * PROBE_BATCH)
        for i, driver in enumerate(drivers):
            driver.state = states[i]
            driver.frame(params[i], visemes[i])
    return tick


def _median_ms(fn: Callable[[], object]) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def _scaled(costs: dict[str, float], tier: Tier) -> float:
    measured = max(costs, key=lambda t: TIERS[t].width * TIERS[t].height)
    ref = TIERS[measured]
    area = (tier.width * tier.height * tier.fps) / (ref.width * ref.height * ref.fps)
    return round(costs[measured] * max(1.0, area), 2)
