"""A worker measures what a session of each tier costs it, on its own renderer, at start."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from protoface.domain.tiers import TIERS
from protoface.streams.work import WorkerInfo
from protoface.worker.capacity.probe import PROBE_BATCH, face_driver_tick, probe
from protoface.worker.face.lipsync.stream import LipSync


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


def test_the_probe_costsface_driver_tick_as_the_worker_batches_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker steps the lip-sync model once per tick for all its sessions
    # (``SpeechBatch``); costing one driver stepped alone would charge a lite session
    # several times what it pays, and admit far fewer.
    calls: list[int] = []
    step_frames = LipSync.step_frames

    def counted(self: LipSync, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]))
        return step_frames(self, *args, **kwargs)

    monkeypatch.setattr(LipSync, "step_frames", counted)
    tick = face_driver_tick(TIERS["lite"])
    tick()
    assert calls == [PROBE_BATCH]  # one call, for the whole batch of sessions


def test_an_entry_announced_before_capacity_by_cost_still_decodes() -> None:
    old = b'{"worker_id":"wk_1","slots":4,"free":3,"sessions":[],"draining":false}'
    info = msgspec.json.decode(old, type=WorkerInfo)
    assert (info.capacity, info.costs, info.room, info.overloaded) == (0.0, {}, {}, None)
