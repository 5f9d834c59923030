"""A worker measures what a session of each tier costs it, on its own renderer, at start."""

from __future__ import annotations

import time

import msgspec

from protoface.domain.tiers import TIERS
from protoface.streams.work import WorkerInfo
from protoface.worker.capacity.probe import probe


def test_the_probe_costs_every_tier_by_its_work_within_two_seconds() -> None:
    probe(["lite"], 2.0)  # the models and the stock avatar loaded once, as a worker has
    started = time.monotonic()
    costs = probe(TIERS, 2.0)
    elapsed = time.monotonic() - started
    # Every tier is costed, each bigger frame more than the smaller one …
    assert set(costs) == set(TIERS)
    assert 0 < costs["mock"] < costs["lite"] < costs["standard"] < costs["pro"]
    # … and within the probe's bound (plus the last tier's measurement in flight).
    assert elapsed < 2.0 + 1.5, elapsed


def test_an_entry_announced_before_capacity_by_cost_still_decodes() -> None:
    old = b'{"worker_id":"wk_1","slots":4,"free":3,"sessions":[],"draining":false}'
    info = msgspec.json.decode(old, type=WorkerInfo)
    assert (info.capacity, info.costs, info.room, info.overloaded) == (0.0, {}, {}, None)
