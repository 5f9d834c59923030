"""Prometheus metrics of the event log itself (served at the API's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Histogram

APPEND_SECONDS = Histogram(
    "protoface_event_append_seconds",
    "Time to append one decision (one or more events) to the event log.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
