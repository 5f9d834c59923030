"""Prometheus metrics the API process exposes at ``/metrics``.

Sessions by status are read from the session projection at scrape time (a
collector), so the figure is exactly the read model's, never a second count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from protoface.api.capacity import Capacity
from protoface.domain.session import STATUSES
from protoface.projections.sessions import SessionsModel

REQUEST_SECONDS = Histogram(
    "protoface_http_request_seconds", "HTTP request duration.", ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)


class SessionsByStatus(Collector):
    def __init__(self, model: SessionsModel) -> None:
        self.model = model

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("protoface_sessions", "Sessions by status.", labels=["status"])
        counts = Counter(s.status for s in self.model.sessions.values())
        for status in STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family


class WorkerCapacity(Collector):
    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("protoface_worker_slots_available",
                                "Free session slots across live workers.",
                                value=self.capacity.free_slots())
        yield GaugeMetricFamily("protoface_workers_live", "Workers heard from recently.",
                                value=self.capacity.live_workers())
        yield from self._by_worker()

    def _by_worker(self) -> Iterator[GaugeMetricFamily]:
        """Each live worker's capacity and free room (cost units, ``domain.capacity``); an
        autoscaler adds workers when the room for a tier runs low (docs/scale-out.md)."""
        units = GaugeMetricFamily("protoface_capacity_units",
                                  "A live worker's capacity in cost units.", labels=["worker"])
        free = GaugeMetricFamily("protoface_capacity_free_units",
                                 "A live worker's cost units not taken by its sessions.",
                                 labels=["worker"])
        room = GaugeMetricFamily(
            "protoface_capacity_room_sessions",
            "More sessions of a tier a live worker would take now (0 while it drains or "
            "is overloaded).", labels=["worker", "quality"])
        overloaded = GaugeMetricFamily(
            "protoface_capacity_overloaded",
            "1 while a live worker has stopped claiming because its frames run late.",
            labels=["worker"])
        for info in self.capacity.live():
            units.add_metric([info.worker_id], info.capacity)
            free.add_metric([info.worker_id], max(0.0, info.capacity - info.used))
            overloaded.add_metric([info.worker_id], 1 if info.overloaded else 0)
            for quality, n in sorted(info.room.items()):
                room.add_metric([info.worker_id, quality], 0 if info.draining else n)
        yield from (units, free, room, overloaded)


_registered: list[Collector] = []


def watch(model: SessionsModel, capacity: Capacity) -> None:
    """Expose this process's read model and capacity view (one of each per process)."""
    for old in _registered:
        REGISTRY.unregister(old)
    _registered.clear()
    for collector in (SessionsByStatus(model), WorkerCapacity(capacity)):
        REGISTRY.register(collector)
        _registered.append(collector)
