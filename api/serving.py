"""How Protoface serves HTTP: one place for the event loop and the uvicorn settings,
shared by every process (and by the benchmark's bare baseline, so it measures the
same stack)."""

from __future__ import annotations

import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
import uvloop
from litestar.types import ASGIApp

T = TypeVar("T")


def freeze_startup_heap() -> None:
    """Move everything alive once the app is built (modules, routes, read models
    restored from their snapshots) out of the cyclic garbage collector's sight
    (``gc.freeze``). They live as long as the process, and each full collection scanned
    them all: pauses under load that set the create benchmark's p99. Frozen objects are
    still freed by reference counting; only cycles among them would no longer be
    collected."""
    gc.collect()
    gc.freeze()


# Young objects allocated between two collections of the youngest generation (CPython's
# default is 700). A request allocates dozens of tracked objects (coroutines, futures,
# dicts) that reference counting frees when it ends; each young collection instead
# rescans what the requests in flight hold. Raising the threshold makes those
# collections rarer by as much while each stays short (figures: docs/performance.md).
# Cyclic garbage waits a little longer.
YOUNG_THRESHOLD = 20_000


def collect_young_less_often() -> None:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (libuv): about a third less CPU per request than asyncio's."""
    return uvloop.run(main)


def server(app: ASGIApp, host: str, port: int) -> uvicorn.Server:
    freeze_startup_heap()
    collect_young_less_often()
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
        http="httptools", ws="websockets-sansio",
    )
    return uvicorn.Server(config)
