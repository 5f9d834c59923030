"""Helpers every controller shares: JSON responses, the clock, query parsing, lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec
from litestar import Response

from protoface.api.errors import invalid
from protoface.domain.session import ACTIVE, STATUSES, TERMINAL
from protoface.projections.pagination import DEFAULT_LIMIT, MAX_LIMIT, Identified, Page

STATUS_ALIASES = {"active": ACTIVE, "terminal": TERMINAL}

_encoder = msgspec.json.Encoder()

V = TypeVar("V", bound=Identified)


class ListOf(msgspec.Struct, Generic[V], kw_only=True):
    """A page of a list operation (the seed's ``SessionList``, ``AvatarList``)."""

    object: Literal["list"] = "list"
    data: list[V]
    has_more: bool
    next_cursor: str | None


def list_response(page: Page[V]) -> Response[bytes]:
    return json_response(ListOf(data=page.items, has_more=page.has_more,
                                next_cursor=page.next_cursor))


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(content=_encoder.encode(value), status_code=status,
                    media_type="application/json", headers=headers)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def now() -> datetime:
    """The one place the API reads the clock: commands carry this time."""
    return datetime.now(UTC)


def query_int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid("invalid_type", f"{name} must be an integer.", name) from None
    if not lo <= value <= hi:
        raise invalid("out_of_range", f"{name} must be between {lo} and {hi}.", name)
    return value


def query_limit(raw: str | None) -> int:
    """A list's ``limit``: 1..100, 20 when not given."""
    return query_int(raw, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def query_datetime(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise invalid("invalid_type", f"{name} must be an ISO-8601 date-time.", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def query_statuses(values: list[str]) -> frozenset[str] | None:
    """``status=a,b&status=c`` (or the aliases ``active``, ``terminal``); none → no filter."""
    statuses: set[str] | None = None
    for value in values:
        for item in value.split(","):
            if item in STATUS_ALIASES:
                statuses = (statuses or set()) | STATUS_ALIASES[item]
            elif item in STATUSES:
                statuses = (statuses or set()) | {item}
            else:
                raise invalid("invalid_status_filter", f"Unknown status {item!r}.", "status")
    return frozenset(statuses) if statuses is not None else None


def check_query(
    params: Any, single: frozenset[str], multi: frozenset[str] = frozenset()
) -> None:
    """Refuse query parameters the operation does not take, and a single-valued one
    given twice: silently ignoring them would answer a question nobody asked.
    ``params`` is Litestar's multi-dict of the query string."""
    for name in params:
        if name not in single and name not in multi:
            raise invalid("unknown_parameter", f"Unknown query parameter {name!r}.", name)
        if name in single and len(params.getall(name)) > 1:
            raise invalid("repeated_parameter", f"{name} may be given only once.", name)
