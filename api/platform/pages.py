"""The browser pages: ``/playground`` (talk to an avatar) and ``/dashboard`` (the
operator's view). Plain HTML/JS/CSS from ``api/web``; no build step, no CDN.

The playground is on in development and off in production unless
``PROTOFACE_PLAYGROUND=1``. In development (``protoface up``) the page is handed the
local dev API key so it works with no typing; in production it asks for a key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from protoface.api.config import Settings
from protoface.api.errors import ApiError
from protoface.api.http import json_response
from protoface.domain.avatar import STOCK_AVATARS
from protoface.domain.tiers import TIERS

WEB_DIR = Path(str(resources.files("protoface.api").joinpath("web")))
SAMPLES_DIR = WEB_DIR / "samples"
DEV_KEY_FILE = "dev-api-key"
AVATARS_PATH = "/v1/avatars"


class Sample(msgspec.Struct):
    name: str
    url: str


class PlaygroundAvatar(msgspec.Struct):
    id: str
    name: str


class PlaygroundConfig(msgspec.Struct):
    object: str
    api_key: str | None  # development only: the local dev key, so the page just works
    stock_avatars: list[PlaygroundAvatar]
    qualities: list[str]
    samples: list[Sample]
    avatars_api: bool  # this server has the avatars API (list, upload)


class WebController(Controller):
    include_in_schema = False

    @get("/playground")
    async def playground(self, settings: NamedDependency[Settings]) -> Response[bytes]:
        _playground_enabled(settings)
        return _page("playground.html")

    @get("/playground/config")
    async def playground_config(
        self, request: Request, settings: NamedDependency[Settings]  # type: ignore[type-arg]
    ) -> Response[bytes]:
        _playground_enabled(settings)
        return json_response(PlaygroundConfig(
            object="playground.config", api_key=_dev_key(settings),
            stock_avatars=[PlaygroundAvatar(a.id, a.name) for a in STOCK_AVATARS.values()],
            qualities=list(TIERS),
            samples=[Sample(p.stem, f"/web/samples/{p.name}")
                     for p in sorted(SAMPLES_DIR.glob("*.wav"))],
            # Asked of the app, so the page never probes (a 404 is a console error).
            avatars_api=AVATARS_PATH in request.app.route_handler_method_map,
        ), headers={"Cache-Control": "no-store"})

    @get("/dashboard")
    async def dashboard(self) -> Response[bytes]:
        return _page("dashboard.html")


def static_files() -> ControllerRouterHandler:
    """Scripts, styles, the AudioWorklet module and the sample utterances under /web."""
    return create_static_files_router(path="/web", directories=[WEB_DIR],
                                      include_in_schema=False)


def _page(name: str) -> Response[bytes]:
    return Response(content=(WEB_DIR / name).read_bytes(), media_type="text/html",
                    headers={"Cache-Control": "no-store"})


def _playground_enabled(settings: Settings) -> None:
    if not settings.playground_enabled:
        raise ApiError("not_found", "route_not_found",
                       "The playground is off in production (PROTOFACE_PLAYGROUND=1 turns it on).")


def _dev_key(settings: Settings) -> str | None:
    if settings.production:
        return None
    try:
        return (settings.data_dir / DEV_KEY_FILE).read_text().strip() or None
    except OSError:
        return None
