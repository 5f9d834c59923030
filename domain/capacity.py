"""Worker capacity in cost units, and what fits in it (pure arithmetic, no I/O).

A *cost unit* is one millisecond of a worker's time per second of video. A session of
a tier costs its frame rate times the worker's own measured time per frame (render,
encode, face driver: ``worker.capacity``), so a slow renderer or a big tier costs more
without any table to update. A worker's *capacity* is the share of its real time it
may spend on sessions and still pace every frame: the rest goes to batching waits, the
GIL handed between the render thread and the event loop, and jitter. ``UTILISATION``
was measured with ``bench/render.py`` on two cores, on the mesh-driven renderer: lite
24 sessions ran real time at ~78 % of real time by the probe's costs and standard 8 at
~74 %, but pro 4 ran 10.6 % late at ~73 % (its 33 ms ticks each carry a 2.5 ms JPEG
encode per session on the event loop); pro 3 (~55 %) ran real time. 66 % admits every
tier below the counts the bench sustains (lite 20, standard 7, pro 3) whatever the
probe's few per cent of swing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from protoface.domain.tiers import TIERS

REALTIME_MS_PER_SECOND = 1000.0
UTILISATION = 0.66
CAPACITY_UNITS = REALTIME_MS_PER_SECOND * UTILISATION


def session_cost(ms_per_frame: float, fps: int) -> float:
    """Cost units of one session whose frames each take ``ms_per_frame`` of the worker."""
    return round(ms_per_frame * fps, 2)


def pinned_costs(capacity: float, sessions: Mapping[str, int]) -> dict[str, float]:
    """Costs from an operator's figure: ``sessions[tier]`` sessions of that tier fill a
    worker of ``capacity`` units (a count measured with ``bench/render.py``)."""
    # Rounded down, so that ``n`` sessions still fit after the rounding.
    return {tier: math.floor(capacity / n * 100) / 100 for tier, n in sessions.items() if n > 0}


def room(costs: Mapping[str, float], capacity: float, used: float,
         free_slots: int) -> dict[str, int]:
    """How many more sessions of each tier fit: by cost units, and at most the free slots.

    An idle worker always fits one session of every tier it costs: a tier measured over
    the whole capacity (a probe on a busy machine) would otherwise never be served.
    """
    left = max(0.0, capacity - used)
    floor = 1 if used <= 0 else 0
    return {tier: min(free_slots, max(floor, int(left // cost + 1e-9)) if cost > 0
                      else free_slots)
            for tier, cost in costs.items()}


def fits(costs: Mapping[str, float], capacity: float, used: float, free_slots: int,
         tier: str) -> bool:
    """Whether one more session of ``tier`` fits (a tier without a cost never does)."""
    if tier not in costs:
        return False
    return room({tier: costs[tier]}, capacity, used, free_slots)[tier] > 0


def parse_pinned(text: str) -> dict[str, int]:
    """``"lite=24,standard=8,pro=3"`` → ``{"lite": 24, …}`` (the ``--capacity`` flag)."""
    pinned: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        tier, _, count = part.partition("=")
        if tier.strip() not in TIERS or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"--capacity wants TIER=SESSIONS,… (got {part!r})")
        pinned[tier.strip()] = int(count)
    return pinned
