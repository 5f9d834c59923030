"""``/v1/avatars``: upload (multipart), get, list, delete."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import get_args

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath

from protoface.api.avatars import images
from protoface.api.avatars.schemas import avatar_view
from protoface.api.avatars.service import AvatarService, NewAvatar
from protoface.api.errors import ApiError, unprocessable
from protoface.api.http import check_query, json_response, list_response, now, query_limit
from protoface.domain import ids
from protoface.domain.avatar import DEFAULT_NAME, DEFAULT_RUNTIME
from protoface.projections.avatars import Query, Scope
from protoface.projections.orgs import Principal

Avatars = NamedDependency[AvatarService]
Caller = NamedDependency[Principal]

FIELDS = ("image", "name", "runtime_type")
LIST_PARAMS = frozenset({"scope", "q", "starting_after", "limit"})
# The image plus the multipart framing and the two short text fields.
MAX_UPLOAD_BYTES = images.MAX_IMAGE_BYTES + 64 * 1024


class AvatarsController(Controller):
    path = "/v1/avatars"

    @post("/", status_code=202, request_max_body_size=MAX_UPLOAD_BYTES)
    async def create(
        self, request: Request, principal: Caller, avatars: Avatars  # type: ignore[type-arg]
    ) -> Response[bytes]:
        fields = await _form(request)
        checked = await asyncio.to_thread(images.check, await _image(fields))
        new = NewAvatar(name=_text(fields, "name", DEFAULT_NAME),
                        runtime_type=_text(fields, "runtime_type", DEFAULT_RUNTIME),
                        image=checked)
        state = await avatars.create(principal, new, now(), ids.new_id(ids.AVATAR))
        return json_response(avatar_view(state), status=202)

    @get("/")
    async def list_avatars(
        self, request: Request, principal: Caller, avatars: Avatars  # type: ignore[type-arg]
    ) -> Response[bytes]:
        params = request.query_params
        with as_unprocessable():
            check_query(params, LIST_PARAMS)
        scope: Scope = params.get("scope", "all")
        if scope not in get_args(Scope):
            raise unprocessable("invalid_value", "scope must be one of all, platform, org.",
                                "scope")
        query = Query(org_id=principal.org.id, scope=scope, q=params.get("q") or None,
                      starting_after=params.get("starting_after") or None,
                      limit=_limit(params.get("limit")))
        return list_response(avatars.page(query).map(avatar_view))

    @get("/{avatar_id:str}")
    async def get_avatar(
        self, avatar_id: FromPath[str], principal: Caller, avatars: Avatars
    ) -> Response[bytes]:
        return json_response(avatar_view(await avatars.get(principal, avatar_id)))

    @delete("/{avatar_id:str}", status_code=204)
    async def delete_avatar(
        self, avatar_id: FromPath[str], principal: Caller, avatars: Avatars
    ) -> None:
        await avatars.delete(principal, avatar_id, now())


async def _form(request: Request) -> dict[str, list[object]]:  # type: ignore[type-arg]
    content_type, _ = request.content_type
    if content_type != "multipart/form-data":
        raise unprocessable("unsupported_media_type", "Upload the image as multipart/form-data.")
    try:
        form = await request.form()
    except RequestEntityTooLarge:
        raise images.too_large() from None
    except ClientException:  # Litestar's parser: "Invalid multipart/form-data" and the like
        raise unprocessable("invalid_body", "The multipart body could not be parsed.") from None
    fields = {key: form.getall(key) for key in form}
    for key, values in fields.items():
        if key not in FIELDS:
            raise unprocessable("unknown_field", f"Unknown form field {key!r}.", key)
        if len(values) > 1:
            raise unprocessable("invalid_value", f"{key} was given more than once.", key)
    return fields


async def _image(fields: dict[str, list[object]]) -> bytes:
    if "image" not in fields:
        raise unprocessable("missing_field", "The image file is required.", "image")
    upload = fields["image"][0]
    if not isinstance(upload, UploadFile):
        raise unprocessable("invalid_type", "image must be a file part.", "image")
    try:
        return await upload.read()
    finally:
        await upload.close()


def _text(fields: dict[str, list[object]], key: str, default: str) -> str:
    if key not in fields:
        return default
    value = fields[key][0]
    if not isinstance(value, str):
        raise unprocessable("invalid_type", f"{key} must be a text field.", key)
    return value


@contextlib.contextmanager
def as_unprocessable() -> Iterator[None]:
    """The avatars operations answer request-shape errors with 422, as their document
    says (the sessions operations answer 400): the shared query checks, re-typed."""
    try:
        yield
    except ApiError as error:
        if error.status != 400:
            raise
        raise unprocessable(error.code, error.message, error.param) from None


def _limit(raw: str | None) -> int:
    with as_unprocessable():
        return query_limit(raw)
