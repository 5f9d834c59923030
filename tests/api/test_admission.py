"""Admission on POST /v1/sessions: given a plan, then its concurrency cap holds exactly
(even under concurrent creates) and the per-key create rate limit answers 429 with
``Retry-After``."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx

from protoface.api.services import Services
from protoface.domain import org
from protoface.domain.plans import PLANS
from protoface.domain.session import Claim, Finish, ReportFirstFrame
from protoface.streams import subjects
from tests.api.support import act_as_worker, assert_error, auth, create, create_ok
from tests.conftest import KeyFactory
from tests.subjects import org_creations
from tests.tokens import livekit_body

DEFAULT_RATE_PER_MINUTE = 10


def rate_per_minute(services: Services) -> int:
    return services.settings.create_rate_per_minute or DEFAULT_RATE_PER_MINUTE


def assert_concurrency_refused(r: httpx.Response) -> None:
    assert_error(r, 429, "quota_exceeded", "concurrent_sessions", None)
    assert int(r.headers["retry-after"]) >= 1


async def creations_in_log(services: Services, session_id: str) -> list[str]:
    """The ids of every session.created the log holds for ``session_id``'s org."""
    org_id = services.sessions_model.sessions[session_id].org_id
    return [s.event.session_id async for s in  # type: ignore[union-attr]
            services.log.replay(1, subject=org_creations(org_id))]


# ── Concurrency cap ─────────────────────────────────────────────────────────────


async def test_free_plan_refuses_a_second_concurrent_session(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")
    first = await create_ok(client, key)
    assert_concurrency_refused(await create(client, key))
    r = await client.get("/v1/sessions", headers=auth(key))
    assert [s["id"] for s in r.json()["data"]] == [first["id"]]


async def test_ending_a_session_frees_its_slot(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")
    first = await create_ok(client, key)
    assert_concurrency_refused(await create(client, key))
    await client.post(f"/v1/sessions/{first['id']}/end", headers=auth(key))
    second = await create_ok(client, key)
    assert second["id"] != first["id"]
    assert_concurrency_refused(await create(client, key))


async def test_a_draining_session_holds_its_slot_until_the_worker_finishes(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("free")
    sid = (await create_ok(client, key))["id"]
    now = datetime.now(UTC)
    await act_as_worker(services, sid, Claim(session_id=sid, now=now, worker_id="wrk_a"))
    await act_as_worker(services, sid, ReportFirstFrame(session_id=sid, now=now))
    r = await client.post(f"/v1/sessions/{sid}/end", headers=auth(key))
    assert r.json()["status"] == "ending"
    assert_concurrency_refused(await create(client, key))
    await act_as_worker(services, sid, Finish(session_id=sid, now=datetime.now(UTC)))
    await create_ok(client, key)


async def test_concurrent_creates_never_overshoot_the_cap(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    # Three API keys of one Starter org (cap 2), ten creates each, all at once: every
    # request reaches admission (no key is over its rate limit) and exactly two win.
    org = f"org-race-{uuid.uuid4().hex[:8]}"
    keys = [await new_key("starter", org=org) for _ in range(3)]
    assert rate_per_minute(services) >= 10
    responses = await asyncio.gather(
        *(create(client, key) for key in keys for _ in range(10))
    )
    assert Counter(r.status_code for r in responses) == {201: 2, 429: 28}
    for r in responses:
        if r.status_code == 429:
            assert_concurrency_refused(r)
    won = sorted(r.json()["id"] for r in responses if r.status_code == 201)
    assert sorted(await creations_in_log(services, won[0])) == won
    listed = await client.get("/v1/sessions", headers=auth(keys[0]))
    assert sorted(s["id"] for s in listed.json()["data"]) == won


async def test_concurrent_creates_fill_the_cap_exactly_after_a_slot_frees(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    org = f"org-refill-{uuid.uuid4().hex[:8]}"
    keys = [await new_key("starter", org=org) for _ in range(2)]
    first = await create_ok(client, keys[0])
    await create_ok(client, keys[0])
    await client.post(f"/v1/sessions/{first['id']}/end", headers=auth(keys[0]))
    responses = await asyncio.gather(*(create(client, keys[1]) for _ in range(8)))
    assert Counter(r.status_code for r in responses) == {201: 1, 429: 7}
    assert len(await creations_in_log(services, first["id"])) == 3


async def admissions_in_log(services: Services, org_id: str) -> list[tuple[str, ...]]:
    """The sessions each admission event of ``org_id`` names, in log order."""
    return [org.admitted_sessions(s.event)
            async for s in services.log.replay(1, subject=subjects.org_admissions(org_id))
            if isinstance(s.event, org.SessionAdmitted | org.SessionsAdmitted)]


async def test_concurrent_creates_are_admitted_in_groups_without_overshooting(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    # Given a Launch org (cap 10) and 30 creates at once over three keys: the creates
    # that wait on the org's admission are admitted together by one event, yet
    # exactly ten win, each admitted once, and every admitted session is created.
    org_name = f"org-group-{uuid.uuid4().hex[:8]}"
    keys = [await new_key("launch", org=org_name) for _ in range(3)]
    cap = PLANS["launch"].max_concurrency
    responses = await asyncio.gather(*(create(client, key) for key in keys for _ in range(10)))
    assert Counter(r.status_code for r in responses) == {201: cap, 429: 30 - cap}
    for r in responses:
        if r.status_code == 429:
            assert_concurrency_refused(r)
    won = sorted(r.json()["id"] for r in responses if r.status_code == 201)
    org_id = services.sessions_model.sessions[won[0]].org_id
    admissions = await admissions_in_log(services, org_id)
    assert sorted(sid for group in admissions for sid in group) == won
    assert len(admissions) < cap  # at least one group admitted several creates
    assert sorted(await creations_in_log(services, won[0])) == won


async def test_a_group_refused_at_the_cap_frees_no_slot_and_admits_later(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    # A burst on a full Starter org writes no admission at all; once a slot frees,
    # the next burst fills exactly that slot.
    org_name = f"org-full-{uuid.uuid4().hex[:8]}"
    keys = [await new_key("starter", org=org_name) for _ in range(2)]
    first = await create_ok(client, keys[0])
    await create_ok(client, keys[0])
    org_id = services.sessions_model.sessions[first["id"]].org_id
    before = await admissions_in_log(services, org_id)
    responses = await asyncio.gather(*(create(client, keys[1]) for _ in range(6)))
    assert Counter(r.status_code for r in responses) == {429: 6}
    assert await admissions_in_log(services, org_id) == before
    await client.post(f"/v1/sessions/{first['id']}/end", headers=auth(keys[0]))
    responses = await asyncio.gather(*(create(client, keys[1]) for _ in range(6)))
    assert Counter(r.status_code for r in responses) == {201: 1, 429: 5}


# ── Rate limit ──────────────────────────────────────────────────────────────────


async def test_the_create_after_the_per_minute_limit_is_rate_limited(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("scale")
    limit = rate_per_minute(services)
    for _ in range(limit):
        await create_ok(client, key)
    r = await create(client, key)
    assert_error(r, 429, "rate_limit", "rate_limited", None)
    retry_after = r.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    listed = await client.get("/v1/sessions", params={"limit": 100}, headers=auth(key))
    assert len(listed.json()["data"]) == limit


async def test_the_rate_limit_is_per_api_key(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    org = f"org-rate-{uuid.uuid4().hex[:8]}"
    busy, other = await new_key("scale", org=org), await new_key("scale", org=org)
    for _ in range(rate_per_minute(services)):
        await create_ok(client, busy)
    assert_error(await create(client, busy), 429, "rate_limit", "rate_limited", None)
    await create_ok(client, other)
    assert_error(await create(client, busy), 429, "rate_limit", "rate_limited", None)


async def test_the_rate_limit_does_not_touch_reads_or_ends(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("scale")
    sessions = [await create_ok(client, key) for _ in range(rate_per_minute(services))]
    for s in sessions:
        assert (await client.get(f"/v1/sessions/{s['id']}", headers=auth(key))).status_code == 200
        r = await client.post(f"/v1/sessions/{s['id']}/end", headers=auth(key))
        assert r.status_code == 200
    assert (await client.get("/v1/sessions", headers=auth(key))).status_code == 200


async def test_idempotent_replays_do_not_count_against_the_rate_limit(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("scale")
    body = livekit_body()
    headers = {"Idempotency-Key": f"idem-{uuid.uuid4()}"}
    for _ in range(rate_per_minute(services) + 5):
        assert (await create(client, key, body=body, headers=headers)).status_code == 201
    for _ in range(rate_per_minute(services) - 1):
        await create_ok(client, key)
    assert_error(await create(client, key), 429, "rate_limit", "rate_limited", None)


async def test_the_internal_plan_has_no_rate_limit(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("internal")
    responses = await asyncio.gather(
        *(create(client, key) for _ in range(rate_per_minute(services) * 2 + 5))
    )
    assert {r.status_code for r in responses} == {201}


async def test_the_settings_override_the_plans_rate(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("scale")
    original = services.settings
    services.settings = dataclasses.replace(original, create_rate_per_minute=3)
    try:
        for _ in range(3):
            await create_ok(client, key)
        assert_error(await create(client, key), 429, "rate_limit", "rate_limited", None)
    finally:
        services.settings = original
