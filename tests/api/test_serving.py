"""How every process serves HTTP (api.serving): the heap alive once the app is built
is frozen out of the cyclic collector's full scans (the create benchmark's p99), and
young collections run less often than CPython's default."""

from __future__ import annotations

import gc

from litestar import Litestar

from protoface.api import serving


def test_building_the_server_freezes_the_heap_alive_at_startup() -> None:
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        server = serving.server(Litestar(route_handlers=[]), "127.0.0.1", 0)
        assert gc.get_freeze_count() > 0  # this process's modules, app, models …
        assert server.config.http == "httptools"
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_building_the_server_collects_young_objects_less_often() -> None:
    threshold = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # CPython's default
        serving.server(Litestar(route_handlers=[]), "127.0.0.1", 0)
        assert gc.get_threshold() == (serving.YOUNG_THRESHOLD, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
