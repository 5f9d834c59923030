"""How Protoface serves HTTP: one place for the event loop and the uvicorn settings,
shared by every process (and by the benchmark's bare baseline, so it measures the
same stack)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
import uvloop
from litestar.types import ASGIApp

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (libuv): about a third less CPU per request than asyncio's."""
    return uvloop.run(main)


def server(app: ASGIApp, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
        http="httptools", ws="websockets-sansio",
    )
    return uvicorn.Server(config)
