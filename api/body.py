"""Decoding request bodies into typed Structs, with msgspec errors turned into ``param`` paths.

msgspec reports ``… - at `$.transport.url```; the API reports ``param: transport.url``
and a stable code for what was wrong.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from protoface.api.errors import ApiError, invalid

T = TypeVar("T")

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIELD = re.compile(r"`(?P<name>[^`]+)`")


def decode(raw: bytes, type_: type[T], *, prefix: str = "") -> T:
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise validation_error(str(exc), prefix) from None
    except msgspec.DecodeError:
        raise invalid("invalid_json", "The request body is not valid JSON.") from None


def convert(obj: object, type_: type[T], *, prefix: str) -> T:
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as exc:
        raise validation_error(str(exc), prefix) from None


def validation_error(message: str, prefix: str = "") -> ApiError:
    match = _AT.search(message)
    path = _dot_path(match.group("path")) if match else ""
    text = message[: match.start()] if match else message
    code = "invalid_value"
    field = _FIELD.search(text)
    if text.startswith("Object missing required field") and field:
        code, path = "missing_field", _join(path, field.group("name"))
    elif text.startswith("Object contains unknown field") and field:
        code, path = "unknown_field", _join(path, field.group("name"))
    elif text.startswith("Expected `object`") and not path and not prefix:
        code = "invalid_body"
    elif re.search(r"Expected `(int|str|bool|float|number|array|object|null)", text) and not (
        re.search(r"[<>]=", text)
    ):
        code = "invalid_type"
    elif re.search(r"[<>]=", text):
        code = "out_of_range"
    param = _join(prefix, path) or None
    return invalid(code, f"{text}{f' (at {param})' if param else ''}.", param)


def _dot_path(path: str) -> str:
    # `$.metadata.key` / `$.items[0].x` → `metadata.key` / `items.0.x`
    return re.sub(r"\[(\d+)\]", r".\1", path).strip(".")


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)
