"""Contract: the official ``protoface-sdk``, unchanged, against ``protoface api`` on loopback.

The SDK parses every response with pydantic ``extra="forbid"`` models, so a field
too many or too few in a response fails here. Every non-2xx response any SDK call
sees is additionally checked against the SDK's ``ApiErrorEnvelope`` (see ``sdk``).
SDK calls for operations outside this suite (avatars, usage, Pipecat sessions) are
not exercised.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from protoface_sdk import (
    ApiErrorEnvelope,
    AuthenticationError,
    ConflictError,
    ErrorType,
    InvalidRequestError,
    LiveKitAudioSource,
    NotFoundError,
    ProtofaceClient,
    ProtofaceError,
    QualityTier,
    RateLimitError,
    Session,
    SessionCreateRequest,
    SessionList,
    SessionStatus,
    UnprocessableError,
)

from tests.conftest import LiveServer
from tests.tokens import livekit_body, worker_token

STOCK = ("av_stock_001", "av_stock_002", "av_stock_003")
SNAKE = re.compile(r"^[a-z][a-z0-9_.]*$")

# The request body of the seed's own curl example (sessions-api.txt), byte for byte.
SEED_CURL_BODY = (
    '{ "avatar_id": "av_demo", "idle_timeout_seconds": 30, "max_duration_seconds": 600, '
    '"metadata": { "customer_session_id": "abc123" }, "quality": "standard", "transport": '
    '{ "room_name": "demo-room", "type": "livekit", "url": "wss://my-app.livekit.cloud", '
    '"worker_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..." } }'
)


# ── Fixtures ────────────────────────────────────────────────────────────────────


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that keeps every request with its (fully read) response."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.responses: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        self.responses.append((request, response))
        return response

    def close(self) -> None:
        self._inner.close()


SdkFactory = Callable[[str], ProtofaceClient]


def assert_error_envelope(response: httpx.Response) -> ApiErrorEnvelope:
    """A non-2xx response is the seed's envelope, echoing ``X-Request-Id``, never a 5xx."""
    assert not response.is_success
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    envelope = ApiErrorEnvelope.model_validate_json(response.content)
    assert envelope.error.request_id == response.headers["x-request-id"]
    assert envelope.error.request_id.startswith("req_")
    assert SNAKE.match(envelope.error.code), envelope.error.code
    assert envelope.error.message
    return envelope


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[SdkFactory]:
    """``sdk(key)`` → a ``ProtofaceClient`` on the live server; afterwards, every error
    response those clients received must validate as the SDK's ``ApiErrorEnvelope``."""
    transport = RecordingTransport()
    clients: list[ProtofaceClient] = []

    def make(key: str) -> ProtofaceClient:
        client = ProtofaceClient(
            key, base_url=live_server.url, max_retries=0, timeout=15, transport=transport
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for request, response in transport.responses:
        if not response.is_success:
            try:
                assert_error_envelope(response)
            except AssertionError as exc:  # pragma: no cover - failure reporting
                raise AssertionError(
                    f"{request.method} {request.url.path} → {response.status_code} "
                    f"{response.text!r} is not a clean error envelope"
                ) from exc


def raw(live_server: LiveServer, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=live_server.url, headers=headers, timeout=15)


def assert_error(
    exc: ProtofaceError, *, status: int, type: str, code: str, param: str | None = None
) -> None:
    assert (exc.status, exc.type, exc.code, exc.param) == (status, type, code, param), (
        exc.status, exc.type, exc.code, exc.param, exc.message,
    )
    assert exc.request_id and exc.request_id.startswith("req_")


@dataclass
class Populated:
    """One launch org with seven sessions, oldest first; two of them ended (canceled)."""

    key: str
    sessions: list[Session]  # as returned by create (before ending)
    canceled: set[str]

    def ids(self, *indexes: int) -> list[str]:
        return [self.sessions[i].id for i in indexes]


POPULATED_AVATARS = (STOCK[0], STOCK[1], STOCK[0], STOCK[2], STOCK[0], STOCK[1], STOCK[0])
POPULATED_CANCELED = (1, 4)


# Every API key this module uses: purpose → plan, each in an org of its own. Keys cost
# a CLI process each (about a second), so tests that do not depend on their org being
# otherwise untouched share one. The create rate limit is 10 per minute per key and
# counts failed creates too; the budget of create calls per key in this module:
KEY_PLANS = {
    "populated": "launch",  # 7 (the ``populated`` fixture)
    # 8: the create tests (3), end (1), idempotency (4). Tests here only look at the
    # sessions they create themselves.
    "shared": "launch",
    "empty": "launch",  # 5, all failing: this org never gets a session
    "clamp": "free",  # 3
    "concurrency": "free",  # 3
    "idempotent_conflict": "launch",  # 2, plus 6 failing in the error-envelope test
    "same_org": "launch",  # 1, plus 5 failing in the error-envelope test
    "rate_limit": "scale",  # 11
}


class Keys:
    """``keys[purpose]`` → an ``sk_live_`` key from the real ``protoface keys create``
    CLI, minted on first use, in an org named ``keys.org(purpose)``."""

    def __init__(self, live_server: LiveServer) -> None:
        self._live_server = live_server
        self._orgs = {name: f"org-{uuid.uuid4().hex[:10]}" for name in KEY_PLANS}
        self._keys: Keys = {}

    def org(self, purpose: str) -> str:
        return self._orgs[purpose]

    def __getitem__(self, purpose: str) -> str:
        if purpose not in self._keys:
            self._keys[purpose] = self._live_server.new_key(
                KEY_PLANS[purpose], org=self._orgs[purpose]
            )
        return self._keys[purpose]


@pytest.fixture(scope="module")
def keys(live_server: LiveServer) -> Keys:
    return Keys(live_server)


@pytest.fixture(scope="module")
def populated(live_server: LiveServer, keys: Keys) -> Iterator[Populated]:
    key = keys["populated"]
    with ProtofaceClient(key, base_url=live_server.url, max_retries=0) as client:
        sessions = [client.sessions.create(livekit_body(avatar)) for avatar in POPULATED_AVATARS]
        for i in POPULATED_CANCELED:
            assert client.sessions.end(sessions[i].id).status == SessionStatus.canceled
    yield Populated(key, sessions, {sessions[i].id for i in POPULATED_CANCELED})


@pytest.fixture
def launch_key(keys: Keys) -> str:
    return keys["shared"]


@pytest.fixture
def empty_org_key(keys: Keys) -> str:
    return keys["empty"]


def newest_first(ids: list[str]) -> list[str]:
    return list(reversed(ids))


# ── Create ──────────────────────────────────────────────────────────────────────


def test_create_with_dict_body_returns_queued_session_with_seed_defaults(
    live_server: LiveServer, sdk: SdkFactory, launch_key: str
) -> None:
    client = sdk(launch_key)
    before = datetime.datetime.now(datetime.UTC)
    session = client.sessions.create(livekit_body())

    assert isinstance(session, Session)
    assert session.object == "session"
    assert re.fullmatch(r"sess_[0-7][0-9A-HJKMNP-TV-Z]{25}", session.id)
    assert session.status == SessionStatus.queued
    assert session.avatar_id == "av_stock_001"
    assert session.quality == QualityTier.standard
    assert session.idle_timeout_seconds == 30
    assert session.max_duration_seconds == 600  # the seed default, under launch's 1200
    assert session.metadata == {}
    assert before - datetime.timedelta(seconds=5) <= session.created_at
    assert session.created_at <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=5
    )
    for unset in ("started_at", "first_frame_at", "ended_at", "failed_at", "failure"):
        assert getattr(session, unset) is None, unset
    transport = session.transport
    assert transport.type == "livekit"
    assert transport.url == "wss://my-app.livekit.cloud"
    assert transport.room_name == "demo-room"
    assert transport.audio_source == LiveKitAudioSource.data_stream
    assert transport.worker_identity == "protoface-worker"  # the token's identity
    assert transport.worker_token == "[redacted]"
    assert session.usage is not None
    assert (session.usage.billable_seconds, session.usage.frames) == (0, 0)


def test_create_clamps_max_duration_to_the_plan_limit(
    sdk: SdkFactory, keys: Keys
) -> None:
    client = sdk(keys["clamp"])
    for requested, effective in ((None, 120), (3600, 120), (60, 60)):
        body = livekit_body()
        if requested is not None:
            body["max_duration_seconds"] = requested
        session = client.sessions.create(body)
        assert session.max_duration_seconds == effective, requested
        client.sessions.end(session.id)  # free plan: one concurrent session


def test_create_livekit_convenience_echoes_every_option(
    live_server: LiveServer, sdk: SdkFactory, launch_key: str
) -> None:
    client = sdk(launch_key)
    metadata = {"customer_session_id": "abc123", "turn": 3, "ratio": 0.5, "vip": True,
                "note": None}
    session = client.sessions.create_livekit(
        avatar_id="av_stock_002", url="wss://other.livekit.cloud", room_name="room-42",
        worker_token=worker_token(room="room-42", identity="avatar-bot"),
        audio_source="track", quality=QualityTier.pro, max_duration_seconds=300,
        idle_timeout_seconds=45, metadata=metadata,
    )
    assert session.status == SessionStatus.queued
    assert session.avatar_id == "av_stock_002"
    assert session.quality == QualityTier.pro
    assert (session.max_duration_seconds, session.idle_timeout_seconds) == (300, 45)
    assert session.metadata == metadata
    assert session.transport.type == "livekit"
    assert session.transport.url == "wss://other.livekit.cloud"
    assert session.transport.room_name == "room-42"
    assert session.transport.audio_source == LiveKitAudioSource.track
    assert session.transport.worker_identity == "avatar-bot"
    assert session.transport.worker_token == "[redacted]"


def test_create_accepts_the_sdk_request_model(
    live_server: LiveServer, sdk: SdkFactory, launch_key: str
) -> None:
    client = sdk(launch_key)
    request = SessionCreateRequest.model_validate(livekit_body("av_stock_003", quality="lite"))
    session = client.sessions.create(request)
    assert (session.avatar_id, session.quality) == ("av_stock_003", QualityTier.lite)
    assert client.sessions.get(session.id).model_dump() == session.model_dump()


# ── Idempotency ─────────────────────────────────────────────────────────────────


def test_idempotency_key_replays_the_first_session(
    live_server: LiveServer, sdk: SdkFactory, keys: Keys
) -> None:
    key = keys["shared"]
    client = sdk(key)
    idem = f"idem-{uuid.uuid4().hex}"
    body = livekit_body(metadata={"idempotency_key": idem})

    first = client.sessions.create(body, idempotency_key=idem)
    second = client.sessions.create(body, idempotency_key=idem)
    assert second.id == first.id
    assert second.model_dump() == first.model_dump()

    wire = SessionCreateRequest.model_validate(body).model_dump(
        mode="json", exclude_none=True, exclude_unset=True
    )
    with raw(live_server, key) as http:
        replay = http.post("/v1/sessions", json=wire, headers={"Idempotency-Key": idem})
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert Session.model_validate_json(replay.content).id == first.id

    # This org is shared with other tests: look at the sessions this body made.
    page = client.sessions.list(limit=100)
    assert page.has_more is False
    made = [s.id for s in page.data if s.metadata.get("idempotency_key") == idem]
    assert made == [first.id]


def test_first_idempotent_create_is_not_marked_replayed(
    live_server: LiveServer, keys: Keys
) -> None:
    with raw(live_server, keys["shared"]) as http:
        r = http.post("/v1/sessions", json=livekit_body(),
                      headers={"Idempotency-Key": f"idem-{uuid.uuid4().hex}"})
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers


def test_idempotency_key_reused_with_another_body_is_a_conflict(
    sdk: SdkFactory, keys: Keys
) -> None:
    client = sdk(keys["idempotent_conflict"])
    idem = f"idem-{uuid.uuid4().hex}"
    first = client.sessions.create(livekit_body(metadata={"order": "A-1"}), idempotency_key=idem)

    with pytest.raises(ConflictError) as caught:
        client.sessions.create(livekit_body(metadata={"order": "B-2"}), idempotency_key=idem)
    assert caught.value.status == 409
    assert caught.value.type == "conflict"
    assert caught.value.code == "idempotency_key_reused"

    page = client.sessions.list()
    assert [s.id for s in page.data] == [first.id]


# ── Get / list ──────────────────────────────────────────────────────────────────


def test_get_returns_the_session_as_created(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    queued = populated.sessions[0]
    assert client.sessions.get(queued.id).model_dump() == queued.model_dump()
    canceled = client.sessions.get(populated.sessions[1].id)
    assert canceled.status == SessionStatus.canceled
    assert canceled.ended_at is not None


def test_get_unknown_session_is_not_found(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    for missing in ("sess_01HXY5K8E7QYG3X8Z6N9R7S0VR", "nope"):
        with pytest.raises(NotFoundError) as caught:
            client.sessions.get(missing)
        assert caught.value.status == 404 and caught.value.type == "not_found"


def test_list_returns_all_sessions_newest_first(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    page = sdk(populated.key).sessions.list()
    assert [s.id for s in page.data] == newest_first(populated.ids(*range(7)))
    assert page.has_more is False
    assert page.next_cursor is None
    for s in page.data:
        expected = SessionStatus.canceled if s.id in populated.canceled else SessionStatus.queued
        assert s.status == expected
        assert s.transport.worker_token == "[redacted]"


def test_list_response_validates_as_the_sdk_session_list(
    live_server: LiveServer, populated: Populated
) -> None:
    with raw(live_server, populated.key) as http:
        r = http.get("/v1/sessions", params={"limit": 2})
    assert r.status_code == 200, r.text
    listed = SessionList.model_validate_json(r.content)
    assert listed.object == "list"
    assert listed.has_more is True
    assert listed.next_cursor == listed.data[-1].id


@pytest.mark.parametrize(
    ("status", "indexes"),
    [
        ("queued", (0, 2, 3, 5, 6)),
        (SessionStatus.canceled, (1, 4)),
        (["queued", "canceled"], tuple(range(7))),
        (["ended", "failed"], ()),
        ("active", (0, 2, 3, 5, 6)),
        ("terminal", (1, 4)),
        (["terminal", "queued"], tuple(range(7))),
    ],
    ids=["queued", "canceled", "repeated", "none-match", "active", "terminal", "alias+status"],
)
def test_list_filters_by_status(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated,
    status: Any, indexes: tuple[int, ...],
) -> None:
    page = sdk(populated.key).sessions.list(status=status)
    assert [s.id for s in page.data] == newest_first(populated.ids(*indexes))
    assert page.has_more is False


def test_list_rejects_an_unknown_status(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    for status in ("bogus", ["queued", "bogus"]):
        with pytest.raises(InvalidRequestError) as caught:
            client.sessions.list(status=status)
        assert_error(caught.value, status=400, type="invalid_request",
                     code="invalid_status_filter", param="status")


def test_list_filters_by_avatar(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    for avatar in STOCK:
        page = client.sessions.list(avatar_id=avatar)
        expected = [i for i, a in enumerate(POPULATED_AVATARS) if a == avatar]
        assert [s.id for s in page.data] == newest_first(populated.ids(*expected)), avatar
        assert all(s.avatar_id == avatar for s in page.data)
    assert client.sessions.list(avatar_id="av_stock_999").data == []
    combined = client.sessions.list(avatar_id=STOCK[0], status="terminal")
    assert [s.id for s in combined.data] == populated.ids(4)


def test_list_filters_by_creation_time(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    at = [s.created_at for s in populated.sessions]
    assert at == sorted(at)

    after = client.sessions.list(created_after=at[2].isoformat())  # inclusive
    assert [s.id for s in after.data] == newest_first(populated.ids(2, 3, 4, 5, 6))
    before = client.sessions.list(created_before=at[2].isoformat())  # exclusive
    assert [s.id for s in before.data] == newest_first(populated.ids(0, 1))
    zulu = at[5].isoformat().replace("+00:00", "Z")
    window = client.sessions.list(created_after=at[1].isoformat(), created_before=zulu)
    assert [s.id for s in window.data] == newest_first(populated.ids(1, 2, 3, 4))
    future = (at[6] + datetime.timedelta(hours=1)).isoformat()
    assert client.sessions.list(created_after=future).data == []


def test_list_paginates_newest_first_with_cursor(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = client.sessions.list(limit=3, starting_after=cursor)
        ids = [s.id for s in page.data]
        pages.append(ids)
        if not page.has_more:
            assert page.next_cursor is None
            break
        assert page.next_cursor == ids[-1]
        cursor = page.next_cursor
        assert len(pages) < 10, "pagination does not terminate"
    expected = newest_first(populated.ids(*range(7)))
    assert pages == [expected[0:3], expected[3:6], expected[6:7]]

    exact = client.sessions.list(limit=7)
    assert len(exact.data) == 7 and exact.has_more is False and exact.next_cursor is None


def test_list_paginates_within_a_filter(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = client.sessions.list(status="queued", limit=2, starting_after=cursor)
        seen += [s.id for s in page.data]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == newest_first(populated.ids(0, 2, 3, 5, 6))


def test_list_rejects_an_out_of_range_limit(
    live_server: LiveServer, sdk: SdkFactory, populated: Populated
) -> None:
    client = sdk(populated.key)
    for limit in (0, 101):
        with pytest.raises(InvalidRequestError) as caught:
            client.sessions.list(limit=limit)
        assert caught.value.param == "limit"


def test_list_only_shows_the_callers_org(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str, populated: Populated
) -> None:
    assert sdk(empty_org_key).sessions.list().data == []


# ── End ─────────────────────────────────────────────────────────────────────────


def test_end_cancels_a_queued_session_idempotently(
    live_server: LiveServer, sdk: SdkFactory, launch_key: str
) -> None:
    client = sdk(launch_key)
    created = client.sessions.create(livekit_body())

    ended = client.sessions.end(created.id)
    assert ended.id == created.id
    assert ended.status == SessionStatus.canceled
    assert ended.ended_at is not None
    assert ended.ended_at >= created.created_at
    assert ended.failure is None and ended.failed_at is None

    again = client.sessions.end(created.id)
    assert again.status == SessionStatus.canceled
    assert again.ended_at == ended.ended_at
    assert client.sessions.get(created.id).model_dump() == again.model_dump()
    # A terminal session needs no polling: the SDK helper returns it at once.
    assert again.wait_until_running(timeout=1).status == SessionStatus.canceled


def test_end_unknown_session_is_not_found(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    with pytest.raises(NotFoundError):
        client.sessions.end("sess_01HXY5K8E7QYG3X8Z6N9R7S0VR")


# ── Platform ────────────────────────────────────────────────────────────────────


def test_list_billing_plans_returns_the_four_public_plans(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    plans = sdk(empty_org_key).list_billing_plans()
    by_key = {p.key: p for p in plans}
    assert len(plans) == 4
    assert set(by_key) == {"free", "starter", "launch", "scale"}
    limits = {k: (p.max_concurrency, p.session_time_limit_seconds) for k, p in by_key.items()}
    assert limits == {
        "free": (1, 120), "starter": (2, 600), "launch": (10, 1200), "scale": (50, 3600),
    }
    assert by_key["free"].monthly_price_cents == 0
    for plan in plans:
        assert plan.name
        assert plan.included_credits > 0


def test_billing_plans_and_status_need_no_key(live_server: LiveServer) -> None:
    with raw(live_server) as http:
        assert http.get("/v1/billing/plans").status_code == 200
        assert http.get("/v1/status").status_code == 200


def test_get_status_reports_each_component(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    status = sdk(empty_org_key).get_status()
    components = {c.name: c.status.value for c in status.components}
    # This server runs no worker (sessions queue): the platform is up but degraded.
    assert components == {"api": "operational", "event_log": "operational",
                          "projections": "operational", "workers": "degraded"}
    assert status.status.value == "degraded"
    assert status.updated_at.tzinfo is not None
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - status.updated_at).total_seconds()) < 60


# ── Typed errors ────────────────────────────────────────────────────────────────


def test_bad_api_key_raises_authentication_error(
    live_server: LiveServer, sdk: SdkFactory
) -> None:
    for key in ("sk_live_" + "x" * 43, "not-a-key"):
        client = sdk(key)
        with pytest.raises(AuthenticationError) as caught:
            client.sessions.list()
        assert caught.value.status == 401 and caught.value.type == "authentication"
        with pytest.raises(AuthenticationError):
            client.sessions.create(livekit_body())


def test_missing_api_key_is_an_authentication_error(live_server: LiveServer) -> None:
    with raw(live_server) as http:
        r = http.get("/v1/sessions")
    assert r.status_code == 401
    assert assert_error_envelope(r).error.type == ErrorType.authentication


def test_pipecat_transport_is_unsupported(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    with pytest.raises(InvalidRequestError) as caught:
        client.sessions.create({"avatar_id": "av_stock_001", "transport": {"type": "pipecat"}})
    assert_error(caught.value, status=400, type="invalid_request",
                 code="transport.unsupported", param="transport.type")
    assert client.sessions.list().data == []


def test_missing_transport_url_is_invalid(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    body = livekit_body()
    del body["transport"]["url"]  # type: ignore[attr-defined]
    # The SDK's own request model refuses this body before sending, so send it via
    # the SDK's lower-level request(), which still maps the response to a typed error.
    with pytest.raises(InvalidRequestError) as caught:
        client.request("POST", "/v1/sessions", json_body=body)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request"
    assert caught.value.param == "transport.url"


def test_unknown_avatar_is_not_found(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    with pytest.raises(NotFoundError) as caught:
        client.sessions.create(livekit_body("av_01HXY5K8E7QYG3X8Z6N9R7S0VR"))
    assert_error(caught.value, status=404, type="not_found", code="avatar_not_found",
                 param="avatar_id")


def test_another_orgs_session_is_not_found(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str, populated: Populated
) -> None:
    other = sdk(empty_org_key)
    theirs = populated.sessions[0].id
    with pytest.raises(NotFoundError) as caught:
        other.sessions.get(theirs)
    assert caught.value.status == 404 and caught.value.type == "not_found"
    with pytest.raises(NotFoundError):
        other.sessions.end(theirs)
    # …and the owner still sees it untouched.
    assert sdk(populated.key).sessions.get(theirs).status == SessionStatus.queued


def test_same_org_second_key_sees_the_orgs_sessions(
    live_server: LiveServer, sdk: SdkFactory, keys: Keys
) -> None:
    first = sdk(keys["same_org"])
    created = first.sessions.create(livekit_body())
    second = sdk(live_server.new_key("launch", org=keys.org("same_org")))
    assert second.sessions.get(created.id).id == created.id


def test_expired_worker_token_is_unprocessable(
    live_server: LiveServer, sdk: SdkFactory, empty_org_key: str
) -> None:
    client = sdk(empty_org_key)
    expired = worker_token(ttl=datetime.timedelta(minutes=-5))
    with pytest.raises(UnprocessableError) as caught:
        client.sessions.create(livekit_body(transport={"worker_token": expired}))
    assert_error(caught.value, status=422, type="unprocessable", code="worker_token_expired",
                 param="transport.worker_token")


def test_eleventh_create_in_a_minute_is_rate_limited(
    sdk: SdkFactory, keys: Keys
) -> None:
    client = sdk(keys["rate_limit"])
    for _ in range(10):
        assert client.sessions.create(livekit_body()).status == SessionStatus.queued
    with pytest.raises(RateLimitError) as caught:
        client.sessions.create(livekit_body())
    error = caught.value
    assert (error.status, error.type) == (429, "rate_limit")
    assert error.retry_after_seconds is not None
    assert 0 < error.retry_after_seconds <= 60
    assert len(client.sessions.list(limit=100).data) == 10


def test_free_plan_second_concurrent_session_exceeds_quota(
    sdk: SdkFactory, keys: Keys
) -> None:
    client = sdk(keys["concurrency"])
    first = client.sessions.create(livekit_body())
    with pytest.raises(ProtofaceError) as caught:
        client.sessions.create(livekit_body())
    error = caught.value
    assert (error.status, error.type, error.code) == (429, "quota_exceeded", "concurrent_sessions")

    client.sessions.end(first.id)
    second = client.sessions.create(livekit_body())
    assert second.status == SessionStatus.queued
    assert [s.status for s in client.sessions.list().data] == [
        SessionStatus.queued, SessionStatus.canceled,
    ]


# ── Error envelope ──────────────────────────────────────────────────────────────


def test_seed_curl_example_gets_a_clean_error(live_server: LiveServer, empty_org_key: str) -> None:
    with raw(live_server, empty_org_key) as http:
        r = http.post("/v1/sessions", content=SEED_CURL_BODY,
                      headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "code", "message", "param", "request_id"}
    assert body["error"]["request_id"] == r.headers["X-Request-Id"]
    assert_error_envelope(r)


def test_every_error_response_is_the_sdk_error_envelope(
    live_server: LiveServer, keys: Keys
) -> None:
    # Failed creates count against the per-key create rate limit too: spread them over
    # two keys so that no key comes near 10 here.
    key_a, key_b = keys["idempotent_conflict"], keys["same_org"]
    good = livekit_body()
    posts: list[tuple[dict[str, Any], int]] = [
        ({"content": b"{not json"}, 400),
        ({"json": []}, 400),
        ({"json": {**good, "extra": 1}}, 400),
        ({"json": {**good, "quality": "ultra"}}, 400),
        ({"json": {**good, "idle_timeout_seconds": 0}}, 400),
        ({"json": {**good, "metadata": {"_avatar.x": "y"}}}, 400),
        ({"json": {**good, "metadata": {"nested": {"a": 1}}}}, 400),
        ({"json": livekit_body(transport={"type": "websocket"})}, 400),
        ({"json": livekit_body(transport={"worker_token": "garbage"})}, 422),
        ({"json": livekit_body(transport={"room_name": "other"})}, 422),
        ({"json": good, "headers": {"Idempotency-Key": ""}}, 400),
    ]
    cases: list[tuple[str, str, str | None, dict[str, Any], int]] = [
        ("GET", "/v1/sessions", None, {}, 401),
        ("GET", "/v1/sessions", None, {"headers": {"Authorization": "Bearer sk_live_no"}}, 401),
        ("GET", "/v1/sessions", None, {"headers": {"Authorization": "Basic abc"}}, 401),
        ("GET", "/v1/sessions/sess_01HXY5K8E7QYG3X8Z6N9R7S0VR", key_a, {}, 404),
        ("POST", "/v1/sessions/nope/end", key_a, {}, 404),
        ("GET", "/v1/nothing-here", key_a, {}, 404),
        ("GET", "/v1/sessions", key_a, {"params": {"status": "bogus"}}, 400),
        ("GET", "/v1/sessions", key_a, {"params": {"limit": "many"}}, 400),
        ("GET", "/v1/sessions", key_a, {"params": {"created_after": "x"}}, 400),
        ("DELETE", "/v1/sessions", key_a, {}, 405),
        *(("POST", "/v1/sessions", (key_a, key_b)[i % 2], kw, code)
          for i, (kw, code) in enumerate(posts)),
    ]
    with httpx.Client(base_url=live_server.url, timeout=15) as http:
        for method, path, key, kwargs, expected in cases:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            headers.update(kwargs.pop("headers", {}))
            r = http.request(method, path, headers=headers, **kwargs)
            assert r.status_code == expected, (method, path, kwargs, r.status_code, r.text)
            assert_error_envelope(r)
