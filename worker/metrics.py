"""Prometheus metrics of workers (served by the API's /metrics when in one process,
or by ``protoface worker --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FIRST_FRAME_SECONDS = Histogram(
    "protoface_time_to_first_frame_seconds", "From session creation to its first frame.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0),
)
RENDER_SECONDS = Histogram(
    "protoface_frame_render_seconds", "Time to render and encode one frame.", ["quality"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16),
)
RENDER_BATCH = Histogram(
    "protoface_render_batch_frames", "Frames rendered together in one batched step.",
    ["quality"], buckets=(1, 2, 4, 8, 12, 16, 24, 32, 48),
)
LATE_FRAMES = Counter(
    "protoface_late_frames_total", "Video frames dropped because a tick ran late.", ["quality"]
)
ONSET_TICKS = Counter(
    "protoface_onset_ticks_total",
    "Ticks run ahead of the frame grid because speech started after silence.", ["quality"],
)
ONSET_SKIPS = Counter(
    "protoface_onset_skipped_frames_total",
    "Silent frames given up so that the speech arriving meanwhile is shown sooner.",
    ["quality"],
)
SLOTS_FREE = Gauge("protoface_worker_slots_free", "Free session slots in this worker.")
CAPACITY_UNITS = Gauge("protoface_worker_capacity_units",
                       "This worker's capacity in cost units (ms of work per second).")
USED_UNITS = Gauge("protoface_worker_used_units", "Cost units of the sessions it runs.")
ROOM = Gauge("protoface_worker_free_room_sessions",
             "Sessions of each tier this worker would still claim.", ["quality"])
AVATAR_BUILD_SECONDS = Histogram(
    "protoface_avatar_build_seconds", "Time to build a custom avatar, by outcome.", ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
