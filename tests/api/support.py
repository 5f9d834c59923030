"""Helpers shared by the sessions API tests: auth headers, creating sessions, and
the one assertion every error goes through (status, envelope, X-Request-Id)."""

from __future__ import annotations

from typing import Any

import httpx

from protoface.api.services import Services
from protoface.domain import ids
from protoface.domain.session import Command, decide
from protoface.streams import subjects
from protoface.streams.eventlog import Expect
from tests.tokens import livekit_body

ERROR_FIELDS = {"type", "code", "message", "param", "request_id"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(
    r: httpx.Response, status: int, type_: str, code: str | None = None,
    param: str | None = None, *, any_param: bool = False,
) -> dict[str, Any]:
    """``r`` is the seed's error envelope with exactly these values; returns ``error``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    assert error["type"] == type_, error
    if code is not None:
        assert error["code"] == code, error
    if not any_param:
        assert error["param"] == param, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"].startswith("req_"), error
    assert r.headers["x-request-id"] == error["request_id"]
    return error  # type: ignore[no-any-return]


async def create(
    client: httpx.AsyncClient, key: str, body: dict[str, object] | None = None,
    headers: dict[str, str] | None = None, **overrides: object,
) -> httpx.Response:
    payload = body if body is not None else livekit_body(**overrides)
    return await client.post("/v1/sessions", json=payload, headers={**auth(key), **(headers or {})})


async def create_ok(client: httpx.AsyncClient, key: str, **overrides: object) -> dict[str, Any]:
    r = await create(client, key, **overrides)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def history(services: Services, session_id: str) -> tuple[list[object], int]:
    """The session's events in the log and its version."""
    events, version = await services.log.load(subjects.session_history(session_id))
    return list(events), version


async def act_as_worker(services: Services, session_id: str, command: Command) -> None:
    """Decide ``command`` on the projected state and append the events through the real
    log, the way a worker does, then wait until the read model has applied them."""
    state = services.sessions_model.sessions[session_id]
    events = decide(command, state, lambda: ids.new_id(ids.EVENT))
    assert events, f"{command!r} decided nothing from {state.status}"
    version = await services.log.version(subjects.session_history(session_id))
    seq = await services.log.append(events, Expect(subjects.session_history(session_id), version))
    await services.projector.wait_for(seq)
