"""GET /v1/sessions/{id} and POST /v1/sessions/{id}/end: given a session in some state
(a worker is simulated by appending its events through the real log), then the
state the contract names; ending is idempotent and never writes twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from protoface.api.services import Services
from protoface.domain.session import Claim, Fail, Finish, ReportFirstFrame, ReportUsage
from tests.api.support import act_as_worker, assert_error, auth, create_ok, history
from tests.conftest import KeyFactory

UNKNOWN_ID = "sess_01HXY5K8E7QYG3X8Z6N9R7S0VR"


def now() -> datetime:
    return datetime.now(UTC)


async def get(client: httpx.AsyncClient, key: str, sid: str) -> dict[str, Any]:
    r = await client.get(f"/v1/sessions/{sid}", headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def end(client: httpx.AsyncClient, key: str, sid: str) -> dict[str, Any]:
    r = await client.post(f"/v1/sessions/{sid}/end", headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def running_session(
    client: httpx.AsyncClient, key: str, services: Services
) -> dict[str, Any]:
    """A session a (simulated) worker has claimed and rendered a first frame for."""
    sid = (await create_ok(client, key))["id"]
    await act_as_worker(services, sid, Claim(session_id=sid, now=now(), worker_id="wrk_test"))
    await act_as_worker(services, sid, ReportFirstFrame(session_id=sid, now=now()))
    return await get(client, key, sid)


# ── Get ─────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("sid", [UNKNOWN_ID, "sess_nope", "nope", "av_stock_001"])
async def test_get_of_a_nonexistent_session_is_404(
    client: httpx.AsyncClient, new_key: KeyFactory, sid: str
) -> None:
    key = await new_key()
    r = await client.get(f"/v1/sessions/{sid}", headers=auth(key))
    assert_error(r, 404, "not_found", "session_not_found", "session_id")


async def test_another_orgs_session_is_not_found_rather_than_forbidden(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    owner, stranger = await new_key(), await new_key()
    sid = (await create_ok(client, owner))["id"]
    for r in (await client.get(f"/v1/sessions/{sid}", headers=auth(stranger)),
              await client.post(f"/v1/sessions/{sid}/end", headers=auth(stranger))):
        assert_error(r, 404, "not_found", "session_not_found", "session_id")
    assert (await get(client, owner, sid))["status"] == "queued"


@pytest.mark.parametrize("sid", [UNKNOWN_ID, "sess_nope"])
async def test_end_of_a_nonexistent_session_is_404(
    client: httpx.AsyncClient, new_key: KeyFactory, sid: str
) -> None:
    key = await new_key()
    r = await client.post(f"/v1/sessions/{sid}/end", headers=auth(key))
    assert_error(r, 404, "not_found", "session_not_found", "session_id")


# ── End before a worker ─────────────────────────────────────────────────────────


async def test_end_of_a_queued_session_cancels_it(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    created = await create_ok(client, key)
    ended = await end(client, key, created["id"])
    assert ended["status"] == "canceled"
    assert ended["ended_at"] is not None
    assert datetime.fromisoformat(ended["ended_at"]) >= datetime.fromisoformat(
        created["created_at"])
    assert ended["started_at"] is None and ended["first_frame_at"] is None
    assert ended["failed_at"] is None and ended["failure"] is None
    unchanged = {k: v for k, v in ended.items() if k not in ("status", "ended_at")}
    assert unchanged == {k: v for k, v in created.items() if k not in ("status", "ended_at")}
    assert await get(client, key, created["id"]) == ended


async def test_ending_twice_returns_the_same_body_and_writes_nothing(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    sid = (await create_ok(client, key))["id"]
    first = await end(client, key, sid)
    events, version = await history(services, sid)
    assert [type(e).__name__ for e in events] == [
        "SessionCreated", "SessionQueued", "SessionCanceled"]
    for _ in range(3):
        assert await end(client, key, sid) == first
    assert await history(services, sid) == (events, version)


# ── End with a worker ───────────────────────────────────────────────────────────


async def test_a_worker_claim_and_first_frame_make_the_session_running(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    session = await running_session(client, key, services)
    assert session["status"] == "running"
    assert session["started_at"] is not None and session["first_frame_at"] is not None
    assert session["ended_at"] is None


async def test_end_of_a_running_session_drains_then_ends(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    running = await running_session(client, key, services)
    sid = running["id"]

    ending = await end(client, key, sid)
    assert ending["status"] == "ending"
    assert ending["ended_at"] is None
    assert ending["started_at"] == running["started_at"]
    assert await get(client, key, sid) == ending
    events, version = await history(services, sid)
    assert type(events[-1]).__name__ == "SessionEnding"
    assert events[-1].reason == "requested"  # type: ignore[attr-defined]

    # Ending an ending session is idempotent: same body, nothing appended.
    assert await end(client, key, sid) == ending
    assert await history(services, sid) == (events, version)

    await act_as_worker(services, sid, Finish(session_id=sid, now=now(), frames=250,
                                              billable_seconds=10))
    ended = await get(client, key, sid)
    assert ended["status"] == "ended"
    assert ended["ended_at"] is not None
    assert ended["usage"] == {"billable_seconds": 10, "frames": 250}

    # And ending an ended session returns it as it is.
    _, version = await history(services, sid)
    assert await end(client, key, sid) == ended
    assert (await history(services, sid))[1] == version


async def test_end_of_a_starting_session_is_ending(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    sid = (await create_ok(client, key))["id"]
    await act_as_worker(services, sid, Claim(session_id=sid, now=now(), worker_id="wrk_test"))
    starting = await get(client, key, sid)
    assert starting["status"] == "starting" and starting["started_at"] is not None
    assert (await end(client, key, sid))["status"] == "ending"


async def test_usage_reported_by_the_worker_is_visible(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    sid = (await running_session(client, key, services))["id"]
    await act_as_worker(services, sid, ReportUsage(session_id=sid, now=now(), frames=120,
                                                   billable_seconds=5))
    assert (await get(client, key, sid))["usage"] == {"billable_seconds": 5, "frames": 120}


async def test_end_of_a_failed_session_returns_it_unchanged(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    sid = (await running_session(client, key, services))["id"]
    await act_as_worker(services, sid, Fail(session_id=sid, now=now(),
                                            code="transport_connect_failed",
                                            message="Could not reach the room."))
    failed = await get(client, key, sid)
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert failed["failure"] == {"code": "transport_connect_failed",
                                 "message": "Could not reach the room."}
    _, version = await history(services, sid)
    assert await end(client, key, sid) == failed
    assert (await history(services, sid))[1] == version


async def test_status_filter_sees_worker_driven_states(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key()
    running = (await running_session(client, key, services))["id"]
    queued = (await create_ok(client, key))["id"]
    r = await client.get("/v1/sessions", params={"status": "running"}, headers=auth(key))
    assert [s["id"] for s in r.json()["data"]] == [running]
    r = await client.get("/v1/sessions", params=[("status", "running"), ("status", "queued")],
                         headers=auth(key))
    assert [s["id"] for s in r.json()["data"]] == [queued, running]
