"""Usage and credits through the API: ``GET /v1/usage`` and ``GET /v1/billing/quota`` after
sessions run by simulated workers (real domain events through the real log), the 402 on
create when the credits are gone, grants through ``protoface credits grant``, and the
supervisor ending a session that ran out of credits."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from protoface.api.services import Services
from protoface.domain import billing
from protoface.domain.session import Claim, Finish, Quality, ReportFirstFrame, ReportUsage
from protoface.projections.usage import UsageModel
from protoface.worker.supervisor import Supervisor
from tests.api.support import act_as_worker, assert_error, auth, create, create_ok
from tests.conftest import KeyFactory


def at(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def run_session(
    client: httpx.AsyncClient, services: Services, key: str, quality: Quality, seconds: int,
    *, started: datetime | None = None, finish: bool = True,
) -> str:
    """A session a worker claims (at ``started``), renders, and finishes after ``seconds``."""
    sid: str = (await create_ok(client, key, quality=quality))["id"]
    began = started or datetime.now(UTC)
    await act_as_worker(services, sid, Claim(session_id=sid, now=began, worker_id="wrk_a"))
    await act_as_worker(services, sid, ReportFirstFrame(session_id=sid, now=began))
    if seconds:
        await act_as_worker(services, sid, ReportUsage(
            session_id=sid, now=began + timedelta(seconds=seconds), frames=seconds * 25,
            billable_seconds=seconds))
    if finish:
        await act_as_worker(services, sid, Finish(
            session_id=sid, now=began + timedelta(seconds=seconds + 1), frames=seconds * 25,
            billable_seconds=seconds))
    return sid


async def usage(client: httpx.AsyncClient, key: str, **params: str) -> dict[str, Any]:
    r = await client.get("/v1/usage", params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def quota(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    r = await client.get("/v1/billing/quota", headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def grant(services: Services, org: str, credits: int) -> subprocess.CompletedProcess[str]:
    """``protoface credits grant`` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "protoface", "credits", "grant", "--org", org,
         "--credits", str(credits), "--nats-url", services.settings.nats_url],
        capture_output=True, text=True, timeout=30,
    )


# ── The ledger ──────────────────────────────────────────────────────────────────


async def test_usage_after_sessions_of_each_tier_equals_the_hand_computed_credits(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("launch")
    for quality, seconds in (("mock", 61), ("lite", 61), ("standard", 121), ("pro", 30)):
        await run_session(client, services, key, quality, seconds)  # type: ignore[arg-type]

    summary = await usage(client, key, period="current_month")
    assert summary["billable_seconds"] == 61 + 61 + 121 + 30
    assert summary["by_quality"] == {"mock": 61, "lite": 61, "standard": 121, "pro": 30}
    assert summary["sessions"] == 4

    # mock 2 min × 1 (bills as standard) + lite 2 × 0.5 + standard 3 × 1 + pro 1 × 2.
    credits = await quota(client, key)
    start, end = billing.month_bounds(billing.month_of(datetime.now(UTC)))
    assert credits == {
        "object": "billing.quota", "plan": "launch", "included_credits": 2_500,
        "granted_credits": 0, "used_credits": 8, "balance_credits": 2_492,
        "period_start": start.isoformat().replace("+00:00", "Z"),
        "period_end": end.isoformat().replace("+00:00", "Z"), "can_start_session": True,
    }


async def test_61_seconds_bill_two_minutes(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("starter")
    await run_session(client, services, key, "standard", 61)
    assert (await quota(client, key))["used_credits"] == 2
    await run_session(client, services, key, "lite", 60)
    assert (await quota(client, key))["used_credits"] == 2.5


async def test_a_running_session_counts_provisionally_then_finally(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("launch")
    sid = await run_session(client, services, key, "pro", 61, finish=False)
    assert services.usage.records[sid].final is False
    assert (await quota(client, key))["used_credits"] == 4  # 2 minutes so far, × 2
    assert (await usage(client, key))["billable_seconds"] == 61
    # The session resource keeps the live heartbeat counter, not the billed minutes.
    view = (await client.get(f"/v1/sessions/{sid}", headers=auth(key))).json()
    assert view["usage"] == {"billable_seconds": 61, "frames": 61 * 25}

    await act_as_worker(services, sid, Finish(session_id=sid, now=at(), frames=3_000,
                                              billable_seconds=121))
    assert services.usage.records[sid].final is True
    assert (await quota(client, key))["used_credits"] == 6
    assert (await usage(client, key))["billable_seconds"] == 121


async def test_usage_is_attributed_to_the_period_the_session_started_in(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("launch")
    this_month = billing.month_of(datetime.now(UTC))
    last_start, last_end = billing.month_bounds(billing.previous_month(this_month))
    late_last_month = last_end - timedelta(minutes=30)  # runs on into this month
    await run_session(client, services, key, "standard", 45, started=late_last_month)
    await run_session(client, services, key, "pro", 90)

    previous = await usage(client, key, period="previous_month")
    assert (previous["billable_seconds"], previous["sessions"]) == (45, 1)
    assert previous["period_start"] == last_start.isoformat().replace("+00:00", "Z")
    assert previous["period_end"] == last_end.isoformat().replace("+00:00", "Z")
    current = await usage(client, key, period="current_month")
    assert (current["billable_seconds"], current["by_quality"]) == (90, {"pro": 90})
    # Last month's session does not spend this month's credits.
    assert (await quota(client, key))["used_credits"] == 4

    # An explicit range: the start is inclusive, the end exclusive.
    exact = late_last_month.isoformat()
    assert (await usage(client, key, period_start=exact,
                        period_end=(late_last_month + timedelta(seconds=1)).isoformat())
            )["sessions"] == 1
    an_hour_before = (late_last_month - timedelta(hours=1)).isoformat()
    empty = await usage(client, key, period_start=an_hour_before, period_end=exact)
    assert (empty["sessions"], empty["billable_seconds"], empty["by_quality"]) == (0, 0, {})
    assert empty["period_end"] == exact.replace("+00:00", "Z")


async def test_no_period_means_the_current_month(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key("free")
    start, end = billing.month_bounds(billing.month_of(datetime.now(UTC)))
    assert await usage(client, key) == {
        "period_start": start.isoformat().replace("+00:00", "Z"),
        "period_end": end.isoformat().replace("+00:00", "Z"),
        "billable_seconds": 0, "sessions": 0, "by_quality": {},
    }


@pytest.mark.parametrize(("params", "code", "param"), [
    ({"period": "current_month", "period_start": "2026-03-01T00:00:00Z"}, "period_conflict",
     "period"),
    ({"period": "previous_month", "period_end": "2026-03-01T00:00:00Z"}, "period_conflict",
     "period"),
    ({"period_start": "2026-03-01T00:00:00Z"}, "missing_field", "period_end"),
    ({"period_end": "2026-03-01T00:00:00Z"}, "missing_field", "period_start"),
    ({"period": "last_week"}, "invalid_value", "period"),
    ({"period": ""}, "invalid_value", "period"),
    ({"period_start": "March", "period_end": "2026-04-01T00:00:00Z"}, "invalid_type",
     "period_start"),
    ({"period_start": "2026-03-01T00:00:00Z", "period_end": "soon"}, "invalid_type",
     "period_end"),
    ({"period_start": "2026-03-02T00:00:00Z", "period_end": "2026-03-01T00:00:00Z"},
     "invalid_value", "period_end"),
    ({"period_start": "2026-03-01T00:00:00Z", "period_end": "2026-03-01T00:00:00Z"},
     "invalid_value", "period_end"),
])
async def test_period_validation_names_the_offending_parameter(
    client: httpx.AsyncClient, new_key: KeyFactory, params: dict[str, str], code: str,
    param: str,
) -> None:
    key = await new_key("free")
    r = await client.get("/v1/usage", params=params, headers=auth(key))
    assert_error(r, 400, "invalid_request", code, param)


async def test_usage_and_quota_need_an_api_key(client: httpx.AsyncClient) -> None:
    for path in ("/v1/usage", "/v1/billing/quota"):
        assert_error(await client.get(path), 401, "authentication", "missing_api_key", None)


async def test_rebuilding_the_ledger_from_sequence_1_equals_the_live_one(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("launch")
    await run_session(client, services, key, "lite", 200)
    await run_session(client, services, key, "pro", 10, finish=False)
    await services.projector.catch_up()
    live = services.usage.export()
    rebuilt = UsageModel()
    async for stored in services.log.replay(1, until=services.usage.last_seq):
        rebuilt.apply(stored.seq, stored.event)
    assert rebuilt.export() == live


# ── Credits ─────────────────────────────────────────────────────────────────────


async def test_no_credits_left_refuses_creates_with_402_and_a_grant_restores_them(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    org = f"org-{uuid.uuid4().hex[:10]}"
    key = await new_key("free", org=org)  # 20 credits a month
    for _ in range(5):
        await run_session(client, services, key, "pro", 120)  # 2 minutes × 2 each
    credits = await quota(client, key)
    assert (credits["used_credits"], credits["balance_credits"]) == (20, 0)
    assert credits["can_start_session"] is False

    refused = await create(client, key)
    assert_error(refused, 402, "quota_exceeded", "insufficient_credit_balance", None)
    pipecat = await client.post("/v1/pipecat/sessions", headers=auth(key),
                                json={"avatar_id": "av_stock_001", "quality": "lite"})
    assert_error(pipecat, 402, "quota_exceeded", "insufficient_credit_balance", None)
    listed = (await client.get("/v1/sessions", headers=auth(key))).json()["data"]
    assert len(listed) == 5  # a refused create writes nothing

    done = grant(services, org, 3)
    assert done.returncode == 0, done.stderr
    await services.projector.catch_up()
    credits = await quota(client, key)
    assert (credits["granted_credits"], credits["balance_credits"]) == (3, 3)
    assert credits["can_start_session"] is True
    await create_ok(client, key, quality="pro")


async def test_a_grant_needs_a_known_org_and_a_positive_amount(services: Services) -> None:
    unknown = grant(services, f"no-such-org-{uuid.uuid4().hex[:6]}", 5)
    assert unknown.returncode == 1 and "No org named" in unknown.stderr
    assert unknown.stdout == ""


async def test_a_non_positive_grant_is_refused(
    new_key: KeyFactory, services: Services
) -> None:
    org = f"org-{uuid.uuid4().hex[:10]}"
    await new_key("free", org=org)
    refused = grant(services, org, 0)
    assert refused.returncode == 1 and "positive" in refused.stderr


async def test_the_supervisor_ends_a_running_session_once_the_org_is_overdrawn(
    client: httpx.AsyncClient, new_key: KeyFactory, services: Services
) -> None:
    key = await new_key("starter")  # 600 credits a month, 2 concurrent sessions
    running = await run_session(client, services, key, "standard", 5, finish=False)
    supervisor = Supervisor(services.log, services.sessions_model, 0.5, services.usage)
    await supervisor.end_out_of_credit()
    await services.projector.catch_up()
    assert services.sessions_model.sessions[running].status == "running"  # plenty left

    await run_session(client, services, key, "standard", 600 * 60)  # the other spends it all
    await supervisor.end_out_of_credit()
    await services.projector.catch_up()
    state = services.sessions_model.sessions[running]
    assert (state.status, state.end_reason) == ("ending", "credits_exhausted")

    await act_as_worker(services, running, Finish(session_id=running, now=at(seconds=6),
                                                  billable_seconds=6))
    view = (await client.get(f"/v1/sessions/{running}", headers=auth(key))).json()
    assert view["status"] == "ended"
    assert services.sessions_model.sessions[running].end_reason == "credits_exhausted"
    assert_error(await create(client, key), 402, "quota_exceeded",
                 "insufficient_credit_balance", None)
