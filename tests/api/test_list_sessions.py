"""GET /v1/sessions: given an org's sessions, then pages of them newest first, filtered
and walked with a cursor; never another org's."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.support import assert_error, auth, create_ok
from tests.conftest import KeyFactory

STATUSES = {"created", "queued", "starting", "running", "ending", "ended", "failed", "canceled"}


async def list_sessions(
    client: httpx.AsyncClient, key: str, params: Any = None
) -> dict[str, Any]:
    r = await client.get("/v1/sessions", params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"object", "data", "has_more", "next_cursor"}, body
    assert body["object"] == "list"
    return body


def ids_of(page: dict[str, Any]) -> list[str]:
    return [s["id"] for s in page["data"]]


async def create_sequentially(client: httpx.AsyncClient, key: str, n: int) -> list[str]:
    return [(await create_ok(client, key))["id"] for _ in range(n)]


async def test_empty_org_lists_nothing(client: httpx.AsyncClient, new_key: KeyFactory) -> None:
    key = await new_key()
    assert await list_sessions(client, key) == {
        "object": "list", "data": [], "has_more": False, "next_cursor": None
    }


async def test_sessions_are_listed_newest_first_as_full_resources(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = [await create_ok(client, key, metadata={"n": i}) for i in range(3)]
    page = await list_sessions(client, key)
    assert page["data"] == list(reversed(created))
    assert page["has_more"] is False and page["next_cursor"] is None
    stamps = [datetime.fromisoformat(s["created_at"]) for s in page["data"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_another_orgs_sessions_never_appear(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    mine, theirs = await new_key(), await new_key()
    their_ids = set(await create_sequentially(client, theirs, 3))
    my_ids = set(await create_sequentially(client, mine, 2))
    assert set(ids_of(await list_sessions(client, mine))) == my_ids
    assert set(ids_of(await list_sessions(client, theirs))) == their_ids
    for params in ({"status": "active"}, {"avatar_id": "av_stock_001"}, {"limit": 100}):
        assert set(ids_of(await list_sessions(client, mine, params))) == my_ids


async def test_two_keys_of_one_org_see_the_same_sessions(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    org = f"org-shared-{datetime.now().timestamp()}"
    first, second = await new_key("launch", org=org), await new_key("launch", org=org)
    a = (await create_ok(client, first))["id"]
    b = (await create_ok(client, second))["id"]
    assert ids_of(await list_sessions(client, first)) == [b, a]
    assert ids_of(await list_sessions(client, second)) == [b, a]


# ── Filters ─────────────────────────────────────────────────────────────────────


@pytest.fixture
async def mixed(client: httpx.AsyncClient, new_key: KeyFactory) -> tuple[str, dict[str, str]]:
    """An org with two queued sessions and one canceled: (key, {name: id})."""
    key = await new_key()
    q1, q2, c = await create_sequentially(client, key, 3)
    r = await client.post(f"/v1/sessions/{c}/end", headers=auth(key))
    assert r.json()["status"] == "canceled"
    return key, {"q1": q1, "q2": q2, "c": c}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("status", "queued")], ["q2", "q1"]),
        ([("status", "canceled")], ["c"]),
        ([("status", "queued"), ("status", "canceled")], ["c", "q2", "q1"]),
        ([("status", "active")], ["q2", "q1"]),
        ([("status", "terminal")], ["c"]),
        ([("status", "active"), ("status", "terminal")], ["c", "q2", "q1"]),
        ([("status", "terminal"), ("status", "canceled")], ["c"]),
        ([("status", "running")], []),
        ([("status", "ended"), ("status", "failed")], []),
        ([], ["c", "q2", "q1"]),
    ],
)
async def test_status_filter_is_repeatable_and_knows_the_aliases(
    client: httpx.AsyncClient, mixed: tuple[str, dict[str, str]],
    params: list[tuple[str, str]], expected: list[str],
) -> None:
    key, named = mixed
    page = await list_sessions(client, key, params)
    assert ids_of(page) == [named[n] for n in expected]
    assert all(s["status"] in STATUSES for s in page["data"])


@pytest.mark.parametrize(
    "params",
    [[("status", "paused")], [("status", "queued"), ("status", "bogus")], [("status", "")],
     [("status", "Queued")], [("status", "ACTIVE")]],
)
async def test_unknown_status_is_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, params: list[tuple[str, str]]
) -> None:
    key = await new_key()
    r = await client.get("/v1/sessions", params=params, headers=auth(key))
    assert_error(r, 400, "invalid_request", "invalid_status_filter", "status")


async def test_avatar_filter_keeps_only_that_avatars_sessions(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    one = (await create_ok(client, key, avatar_id="av_stock_001"))["id"]
    two = (await create_ok(client, key, avatar_id="av_stock_002"))["id"]
    three = (await create_ok(client, key, avatar_id="av_stock_001"))["id"]
    assert ids_of(await list_sessions(client, key, {"avatar_id": "av_stock_001"})) == [three, one]
    assert ids_of(await list_sessions(client, key, {"avatar_id": "av_stock_002"})) == [two]
    assert ids_of(await list_sessions(client, key, {"avatar_id": "av_stock_003"})) == []


async def test_filters_combine(client: httpx.AsyncClient, new_key: KeyFactory) -> None:
    key = await new_key()
    a = (await create_ok(client, key, avatar_id="av_stock_001"))["id"]
    b = (await create_ok(client, key, avatar_id="av_stock_002"))["id"]
    await create_ok(client, key, avatar_id="av_stock_001")
    await client.post(f"/v1/sessions/{a}/end", headers=auth(key))
    await client.post(f"/v1/sessions/{b}/end", headers=auth(key))
    page = await list_sessions(
        client, key, {"status": "terminal", "avatar_id": "av_stock_001"}
    )
    assert ids_of(page) == [a]


async def test_created_after_is_inclusive_and_created_before_exclusive(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    s1, s2, s3 = [await create_ok(client, key) for _ in range(3)]
    at = s2["created_at"]
    assert ids_of(await list_sessions(client, key, {"created_after": at})) == [s3["id"], s2["id"]]
    assert ids_of(await list_sessions(client, key, {"created_before": at})) == [s1["id"]]
    both = {"created_after": at, "created_before": s3["created_at"]}
    assert ids_of(await list_sessions(client, key, both)) == [s2["id"]]
    empty = {"created_after": at, "created_before": at}
    assert ids_of(await list_sessions(client, key, empty)) == []


async def test_created_bounds_accept_offsets_and_wide_windows(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    session = await create_ok(client, key)
    created = datetime.fromisoformat(session["created_at"])
    hour_before = (created - timedelta(hours=1)).astimezone().isoformat()
    hour_after = (created + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    window = {"created_after": hour_before, "created_before": hour_after}
    assert ids_of(await list_sessions(client, key, window)) == [session["id"]]
    future = {"created_after": hour_after}
    assert ids_of(await list_sessions(client, key, future)) == []


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "12"])
async def test_unparseable_created_bound_is_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, name: str, value: str
) -> None:
    key = await new_key()
    r = await client.get("/v1/sessions", params={name: value}, headers=auth(key))
    assert_error(r, 400, "invalid_request", "invalid_type", name)


# ── Limit and pagination ────────────────────────────────────────────────────────


@pytest.mark.parametrize(("limit", "code"), [("0", "out_of_range"), ("101", "out_of_range"),
                                              ("-1", "out_of_range"), ("ten", "invalid_type"),
                                              ("", "invalid_type"), ("2.5", "invalid_type")])
async def test_limit_outside_1_to_100_is_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, limit: str, code: str
) -> None:
    key = await new_key()
    r = await client.get("/v1/sessions", params={"limit": limit}, headers=auth(key))
    assert_error(r, 400, "invalid_request", code, "limit")


@pytest.fixture
async def many(client: httpx.AsyncClient, new_key: KeyFactory) -> tuple[str, list[str]]:
    """An org (internal plan: no rate limit) with 25 sessions: (key, ids newest first)."""
    key = await new_key("internal")
    created = await asyncio.gather(*(create_ok(client, key) for _ in range(25)))
    return key, sorted((s["id"] for s in created), reverse=True)


async def test_default_limit_is_20(
    client: httpx.AsyncClient, many: tuple[str, list[str]]
) -> None:
    key, newest_first = many
    page = await list_sessions(client, key)
    assert ids_of(page) == newest_first[:20]
    assert page["has_more"] is True
    assert page["next_cursor"] == newest_first[19]


async def test_limit_1_and_100_are_accepted(
    client: httpx.AsyncClient, many: tuple[str, list[str]]
) -> None:
    key, newest_first = many
    one = await list_sessions(client, key, {"limit": 1})
    assert ids_of(one) == newest_first[:1] and one["has_more"] is True
    hundred = await list_sessions(client, key, {"limit": 100})
    assert ids_of(hundred) == newest_first
    assert hundred["has_more"] is False and hundred["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 7, 24, 25])
async def test_pagination_walks_every_session_exactly_once(
    client: httpx.AsyncClient, many: tuple[str, list[str]], limit: int
) -> None:
    key, newest_first = many
    walked: list[str] = []
    cursor: str | None = None
    for _ in range(30):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["starting_after"] = cursor
        page = await list_sessions(client, key, params)
        assert len(page["data"]) <= limit
        walked += ids_of(page)
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        assert page["next_cursor"] == page["data"][-1]["id"]
        cursor = page["next_cursor"]
    assert walked == newest_first


async def test_pagination_with_a_filter_walks_only_matching_sessions(
    client: httpx.AsyncClient, many: tuple[str, list[str]]
) -> None:
    key, newest_first = many
    ended = newest_first[1::3]
    for sid in ended:
        assert (await client.post(f"/v1/sessions/{sid}/end", headers=auth(key))).status_code == 200
    walked: list[str] = []
    params: dict[str, Any] = {"limit": 3, "status": "canceled"}
    while True:
        page = await list_sessions(client, key, params)
        walked += ids_of(page)
        if not page["has_more"]:
            break
        params["starting_after"] = page["next_cursor"]
    assert walked == ended


async def test_starting_after_the_oldest_session_is_an_empty_last_page(
    client: httpx.AsyncClient, many: tuple[str, list[str]]
) -> None:
    key, newest_first = many
    page = await list_sessions(client, key, {"starting_after": newest_first[-1]})
    assert page == {"object": "list", "data": [], "has_more": False, "next_cursor": None}


# ── Query parameters the operation does not take (found by Schemathesis) ──────────


@pytest.mark.parametrize(("path", "query", "code", "param"), [
    ("/v1/sessions", "limit=5&colour=blue", "unknown_parameter", "colour"),
    ("/v1/sessions", "avatar_id=a&avatar_id=b", "repeated_parameter", "avatar_id"),
    ("/v1/sessions", "starting_after=x&starting_after=y", "repeated_parameter",
     "starting_after"),
    ("/v1/usage", "period=current_month&period=previous_month", "repeated_parameter",
     "period"),
    ("/v1/usage", "month=2026-01", "unknown_parameter", "month"),
])
async def test_an_unknown_or_repeated_query_parameter_is_refused(
    client: httpx.AsyncClient, new_key: KeyFactory, path: str, query: str, code: str,
    param: str,
) -> None:
    key = await new_key()
    r = await client.get(f"{path}?{query}", headers=auth(key))
    assert_error(r, 400, "invalid_request", code, param)


async def test_status_may_repeat(client: httpx.AsyncClient, new_key: KeyFactory) -> None:
    key = await new_key()
    r = await client.get("/v1/sessions?status=queued&status=ended", headers=auth(key))
    assert r.status_code == 200, r.text
