"""The error envelope: every non-2xx response is built here and nowhere else.

Controllers and services raise :class:`ApiError` (or the domain's ``Rejected``);
the exception handlers below turn anything raised into the seed's envelope with
``error.request_id`` equal to the ``X-Request-Id`` header.
"""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from protoface.domain.errors import Rejected
from protoface.streams.eventlog import ConcurrencyConflict, LogUnavailable

log = logging.getLogger("protoface.api")

STATUS_BY_TYPE = {
    "invalid_request": 400,
    "authentication": 401,
    "quota_exceeded": 402,  # 429 for concurrency, chosen per error
    "permission": 403,
    "not_found": 404,
    "conflict": 409,
    "unprocessable": 422,
    "rate_limit": 429,
    "internal": 500,
    "service_unavailable": 503,
}


class ApiError(Exception):
    def __init__(
        self, type: str, code: str, message: str, *, param: str | None = None,
        status: int | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.code = code
        self.message = message
        self.param = param
        self.status = status or STATUS_BY_TYPE[type]
        self.headers = headers or {}


def invalid(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError("invalid_request", code, message, param=param)


def unprocessable(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError("unprocessable", code, message, param=param)


def not_found(what: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError("not_found", f"{what}_not_found", f"No {what} {ident!r}.", param=param)


def from_rejected(exc: Rejected) -> ApiError:
    if exc.code == "concurrent_sessions":
        return ApiError("quota_exceeded", exc.code, exc.message, status=429,
                        headers={"Retry-After": "5"})
    if exc.code == "insufficient_credit_balance":
        return ApiError("quota_exceeded", exc.code, exc.message, status=402)
    if exc.code == "at_capacity":
        return ApiError("service_unavailable", exc.code, exc.message,
                        headers={"Retry-After": "2"})
    kind = exc.kind if exc.kind in STATUS_BY_TYPE else "conflict"
    return ApiError(kind, exc.code, exc.message, param=exc.param)


class ApiErrorBody(msgspec.Struct, omit_defaults=False):
    type: str
    code: str
    message: str
    param: str | None
    request_id: str


class Envelope(msgspec.Struct):
    error: ApiErrorBody


_encoder = msgspec.json.Encoder()


def request_id_of(request: Request) -> str:  # type: ignore[type-arg]
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else "req_unknown"


def envelope_bytes(error: ApiError, request_id: str) -> bytes:
    body = ApiErrorBody(error.type, error.code, error.message, error.param, request_id)
    return _encoder.encode(Envelope(body))


def render(request: Request, error: ApiError) -> Response[bytes]:  # type: ignore[type-arg]
    return Response(
        content=envelope_bytes(error, request_id_of(request)),
        status_code=error.status, media_type="application/json", headers=error.headers,
    )


# ── Exception handlers (registered on the app) ─────────────────────────────────


def on_api_error(request: Request, exc: ApiError) -> Response[bytes]:  # type: ignore[type-arg]
    return render(request, exc)


def on_rejected(request: Request, exc: Rejected) -> Response[bytes]:  # type: ignore[type-arg]
    return render(request, from_rejected(exc))


def on_log_unavailable(request: Request, exc: Exception) -> Response[bytes]:  # type: ignore[type-arg]
    log.warning("event log unavailable", extra={"request_id": request_id_of(request)})
    return render(request, ApiError(
        "service_unavailable", "event_log_unavailable",
        "The event log is unreachable; nothing was written. Retry shortly.",
        headers={"Retry-After": "1"},
    ))


def on_contention(request: Request, exc: Exception) -> Response[bytes]:  # type: ignore[type-arg]
    return render(request, ApiError(
        "service_unavailable", "contention",
        "Too many concurrent changes to this resource; retry shortly.",
        headers={"Retry-After": "1"},
    ))


_HTTP_CODES = {
    400: ("invalid_request", "bad_request"),
    401: ("authentication", "invalid_api_key"),
    403: ("permission", "forbidden"),
    404: ("not_found", "route_not_found"),
    405: ("invalid_request", "method_not_allowed"),
    413: ("invalid_request", "body_too_large"),
    415: ("invalid_request", "unsupported_media_type"),
    429: ("rate_limit", "rate_limited"),
}


def on_http_exception(request: Request, exc: HTTPException) -> Response[bytes]:  # type: ignore[type-arg]
    status = exc.status_code
    if status >= 500:
        return on_internal(request, exc)
    type_, code = _HTTP_CODES.get(status, ("invalid_request", "bad_request"))
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else "Bad request."
    if status == 404:
        message = f"No route {request.method} {request.url.path}."
    return render(request, ApiError(type_, code, message, status=status,
                                    headers=dict(exc.headers or {})))


def on_internal(request: Request, exc: Exception) -> Response[bytes]:  # type: ignore[type-arg]
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id_of(request)})
    return render(
        request, ApiError("internal", "internal_error", "Something went wrong on our side.")
    )


HANDLERS = {
    ApiError: on_api_error,
    Rejected: on_rejected,
    LogUnavailable: on_log_unavailable,
    ConcurrencyConflict: on_contention,
    HTTPException: on_http_exception,
    Exception: on_internal,
}
