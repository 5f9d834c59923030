"""Process settings for a worker that renders on a real-time frame grid.

A tick's batch must be rendered within one frame period (40 ms at 25 fps) of falling
due, so the pauses a Python process makes by itself decide how many sessions a worker
sustains. Three of them, each measured at standard × 8 sessions (``bench/render.py``;
figures in docs/performance.md):

* **Full garbage collections.** Importing torch, numpy, OpenCV and livekit leaves
  a great many objects the cyclic collector tracks; every full collection scanned them
  all, with the event loop (and the render thread, waiting for the GIL) stopped:
  ticks of every session lost at once. They live as long as the process, so
  they are moved out of the collector's sight (``gc.freeze``); reference counting still
  frees them.
* **The GIL switch interval.** The render thread releases the GIL while torch computes
  and takes it back between steps; while the event loop runs Python (face drivers, JPEG
  encoding, pacing) each take waited up to CPython's 5 ms switch interval. A shorter
  interval brings a batch beside a busy Python thread much closer to its time alone.
* **Render temporaries given back to the kernel.** A batch allocates tens of MB of
  tensors (grids, warped regions, frames); glibc served the large ones with fresh
  ``mmap`` pages and returned them after each batch, so every batch paid thousands of
  page faults (a large share of its time). Keeping them in the heap
  lets the next batch reuse the memory (bounded: ``TRIM_THRESHOLD`` of free heap).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

log = logging.getLogger("protoface.worker.realtime")

SWITCH_INTERVAL = 0.0005  # seconds (CPython's default is 0.005)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: smaller blocks come from the heap
TRIM_THRESHOLD = 256 << 20  # free heap kept before it is returned to the kernel

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def prepare() -> None:
    """Call once the process has imported what it runs (torch among it)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    _keep_render_memory()
    gc.collect()
    gc.freeze()


def _keep_render_memory() -> None:
    """Raise glibc's mmap and trim thresholds; elsewhere (musl, macOS) nothing to do."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.info("mallopt unavailable: render memory is left to the allocator")
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
