"""Unauthenticated platform endpoints: the plan catalog, status, the OpenAPI document
and Prometheus metrics."""

from __future__ import annotations

import re
from datetime import datetime
from importlib import resources

import httpx

from tests.api.support import auth, create_ok
from tests.conftest import KeyFactory

PLAN_FIELDS = {
    "key", "name", "monthly_price_cents", "included_credits", "extra_credit_unit_micros",
    "max_concurrency", "custom_avatar_slots", "extra_avatar_slot_cents",
    "session_time_limit_seconds",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def test_plans_are_public_and_list_exactly_the_four_sold_plans(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/billing/plans")
    assert r.status_code == 200, r.text
    plans = r.json()
    assert [p["key"] for p in plans] == ["free", "starter", "launch", "scale"]
    for plan in plans:
        assert set(plan) == PLAN_FIELDS, plan
        assert isinstance(plan["name"], str) and plan["name"]
        for field in ("monthly_price_cents", "included_credits", "max_concurrency",
                      "custom_avatar_slots", "session_time_limit_seconds"):
            assert isinstance(plan[field], int) and not isinstance(plan[field], bool)
        for field in ("extra_credit_unit_micros", "extra_avatar_slot_cents"):
            assert plan[field] is None or isinstance(plan[field], int)
    limits = {p["key"]: (p["max_concurrency"], p["session_time_limit_seconds"]) for p in plans}
    assert limits == {"free": (1, 120), "starter": (2, 600), "launch": (10, 1200),
                      "scale": (50, 3600)}


async def test_plans_ignore_a_bad_api_key(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/billing/plans", headers={"Authorization": "Bearer sk_live_bogus"})
    assert r.status_code == 200
    assert len(r.json()) == 4


async def test_status_rolls_up_components_including_the_event_log(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/status")
    assert r.status_code == 200, r.text
    status = r.json()
    assert set(status) == {"status", "components", "updated_at"}
    # No worker runs in these tests: sessions wait in the queue, the platform is degraded.
    assert status["status"] == "degraded"
    datetime.fromisoformat(status["updated_at"])
    for component in status["components"]:
        assert set(component) == {"name", "status"}
        assert component["status"] in ("operational", "degraded", "outage")
    names = {c["name"]: c["status"] for c in status["components"]}
    assert names["event_log"] == "operational"
    assert names["api"] == "operational"
    assert names["workers"] == "degraded"


async def test_openapi_document_is_served_with_its_twelve_operations(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    # The checked-in contract, byte for byte: never a document generated from the routes.
    assert r.content == resources.files("protoface.api").joinpath("openapi.json").read_bytes()
    document = r.json()
    assert document["info"]["title"] == "Protoface API"
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items() for method in item
        if method in HTTP_METHODS
    }
    assert len(operations) == 12
    assert {("POST", "/v1/sessions"), ("GET", "/v1/sessions"),
            ("GET", "/v1/sessions/{session_id}"), ("POST", "/v1/sessions/{session_id}/end"),
            ("GET", "/v1/billing/plans"), ("GET", "/v1/status")} <= operations
    schemas = document["components"]["schemas"]
    assert set(schemas["PlanView"]["properties"]) == PLAN_FIELDS
    assert {"Session", "SessionList", "ApiErrorEnvelope", "StatusResponse"} <= set(schemas)


async def test_metrics_expose_sessions_appends_and_projection(
    client: httpx.AsyncClient, new_key: KeyFactory
) -> None:
    key = await new_key()
    await create_ok(client, key)  # at least one append and one queued session
    await client.get("/v1/sessions", headers=auth(key))
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    queued = re.search(r'^protoface_sessions\{status="queued"\} (\S+)$', text, re.M)
    assert queued is not None and float(queued.group(1)) >= 1
    for status in ("created", "running", "ending", "ended", "failed", "canceled"):
        assert f'protoface_sessions{{status="{status}"}}' in text
    assert re.search(r"^protoface_event_append_seconds_count (\S+)$", text, re.M)
    applied = re.search(r"^protoface_projection_applied_seq (\S+)$", text, re.M)
    assert applied is not None and float(applied.group(1)) > 0
