"""The bare-HTTP baseline for ``bench.api_create``: one Litestar POST endpoint that
decodes a JSON body with msgspec and answers 201 JSON, on the same uvicorn settings
as ``protoface api`` (see ``api.cli._serve``), so the gap to ``POST /v1/sessions``
is what Protoface itself costs.

    python -m bench.baseline_app --port 8001
"""

from __future__ import annotations

import argparse

import msgspec
from litestar import Litestar, Request, Response, post

from protoface.api import serving

PATH = "/bench"


class Item(msgspec.Struct):
    """A small Struct; unknown fields (the rest of a create body) are skipped."""

    avatar_id: str
    quality: str = "standard"


class Created(msgspec.Struct):
    id: str
    avatar_id: str
    quality: str


_decoder = msgspec.json.Decoder(Item)
_encoder = msgspec.json.Encoder()


@post(PATH, status_code=201)
async def create(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    item = _decoder.decode(await request.body())
    content = _encoder.encode(Created(id="bench_1", avatar_id=item.avatar_id, quality=item.quality))
    return Response(content=content, status_code=201, media_type="application/json")


def create_app() -> Litestar:
    return Litestar(route_handlers=[create], logging_config=None, openapi_config=None,
                    debug=False)


async def serve(host: str, port: int) -> None:
    # Exactly the server settings and event loop of ``protoface api`` (api.serving).
    await serving.server(create_app(), host, port).serve()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    serving.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
