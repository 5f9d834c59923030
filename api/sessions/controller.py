"""``/v1/sessions``: create, get, list, end."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from protoface.api import body
from protoface.api.http import (
    check_query,
    encode,
    json_response,
    list_response,
    now,
    query_datetime,
    query_limit,
    query_statuses,
)
from protoface.api.sessions import validation
from protoface.api.sessions.creating import CreateGate
from protoface.api.sessions.schemas import SessionCreateRequest, session_view
from protoface.api.sessions.service import SessionService
from protoface.domain import ids
from protoface.domain.sealing import Keyring
from protoface.projections.orgs import Principal
from protoface.projections.sessions import Query

# Injected by the app (see api.app), by name.
Sessions = NamedDependency[SessionService]
Caller = NamedDependency[Principal]


LIST_PARAMS = frozenset({"avatar_id", "created_after", "created_before", "starting_after",
                         "limit"})


class SessionsController(Controller):
    path = "/v1/sessions"

    @post("/", status_code=201)
    async def create(
        self, request: Request, principal: Caller, sessions: Sessions,  # type: ignore[type-arg]
        creating: NamedDependency[CreateGate], keyring: NamedDependency[Keyring],
    ) -> Response[bytes]:
        async def build(raw: bytes) -> bytes:
            decoded = body.decode(raw, SessionCreateRequest)
            session_id = ids.new_id(ids.SESSION)
            at = now()
            new = validation.new_session(decoded, session_id, at, keyring)
            state = await sessions.create(principal, new, at, session_id)
            return encode(session_view(state))

        return await creating.create(request, principal, build)

    @get("/")
    async def list_sessions(
        self, request: Request, principal: Caller, sessions: Sessions  # type: ignore[type-arg]
    ) -> Response[bytes]:
        params = request.query_params
        check_query(params, LIST_PARAMS, frozenset({"status"}))
        query = Query(
            org_id=principal.org.id,
            statuses=query_statuses(params.getall("status", [])),
            avatar_id=params.get("avatar_id"),
            created_after=query_datetime(params.get("created_after"), "created_after"),
            created_before=query_datetime(params.get("created_before"), "created_before"),
            starting_after=params.get("starting_after"),
            limit=query_limit(params.get("limit")),
        )
        return list_response((await sessions.page(query)).map(session_view))

    @get("/{session_id:str}")
    async def get_session(
        self, session_id: FromPath[str], principal: Caller, sessions: Sessions
    ) -> Response[bytes]:
        return json_response(session_view(await sessions.get(principal, session_id)))

    @post("/{session_id:str}/end", status_code=200)
    async def end_session(
        self, session_id: FromPath[str], principal: Caller, sessions: Sessions
    ) -> Response[bytes]:
        state = await sessions.end(principal, session_id, now())
        return json_response(session_view(state))
