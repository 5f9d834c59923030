"""What handlers are injected with: narrow collaborators, resolved one at a time."""

from __future__ import annotations

import inspect
from typing import Any

from litestar.routes import HTTPRoute, WebSocketRoute

from protoface.api.app import litestar_app
from protoface.api.dependencies import dependencies
from protoface.api.services import Services


def _handlers(services: Services) -> dict[str, tuple[Any, Any]]:
    """Every route's handler and its parameter model, by ``METHOD path``."""
    found: dict[str, tuple[Any, Any]] = {}
    for route in litestar_app(services).routes:
        if isinstance(route, HTTPRoute):
            for method, (handler, model) in route.route_handler_map.items():
                found[f"{method} {route.path}"] = (handler, model)
        elif isinstance(route, WebSocketRoute):
            found[f"WS {route.path}"] = (route.route_handler, route.handler_parameter_model)
    return found


def test_no_handler_is_handed_the_composition(services: Services) -> None:
    assert "services" not in dependencies(services)
    for name, (handler, _) in _handlers(services).items():
        parameters = inspect.signature(handler.fn).parameters.values()
        assert all("Services" not in str(p.annotation) for p in parameters), name


def test_every_handler_resolves_its_dependencies_one_after_another(services: Services) -> None:
    # Dependencies of one level are resolved in an anyio task group, which costs more
    # than the rest of a request's resolution: every level holds one dependency.
    models = {name: model for name, (_, model) in _handlers(services).items()}
    assert {"POST /v1/sessions", "POST /v1/pipecat/sessions"} <= set(models)
    crowded = {name: [sorted(d.key for d in batch) for batch in model.dependency_batches]
               for name, model in models.items()
               if any(len(batch) > 1 for batch in model.dependency_batches)}
    assert crowded == {}
