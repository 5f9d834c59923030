"""The operator endpoint (``/ops/overview``) and the pages: the operator key is required
and compared by hash; the playground is on in development, off in production unless
enabled, and hands out the dev key only in development."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from protoface.api.config import Settings
from protoface.api.platform import operator
from protoface.api.platform.ops import usage_by_day
from protoface.api.services import Services
from protoface.domain.billing import UsageRecord
from tests.api.support import assert_error, auth, create_ok
from tests.conftest import KeyFactory


@pytest.fixture
def settings(services: Services) -> Iterator[Settings]:
    """Each test may swap the process's settings; they are put back afterwards."""
    before = services.settings
    yield before
    services.settings = before


@pytest.fixture
def operator_key(services: Services, settings: Settings) -> str:
    path = operator.ensure_key_file(settings.data_dir)
    return path.read_text().strip()


async def test_ops_needs_the_operator_key(
    client: httpx.AsyncClient, operator_key: str, new_key: KeyFactory
) -> None:
    assert_error(await client.get("/ops/overview"), 401, "authentication", "missing_operator_key")
    api_key = await new_key()
    r = await client.get("/ops/overview", headers=auth(api_key))  # an API key is not enough
    assert_error(r, 401, "authentication", "invalid_operator_key")
    r = await client.get("/ops/overview", headers=auth(operator_key + "x"))
    assert_error(r, 401, "authentication", "invalid_operator_key")


async def test_with_no_operator_key_configured_ops_stays_closed(
    client: httpx.AsyncClient, services: Services, settings: Settings, tmp_path: Path
) -> None:
    services.settings = dataclasses.replace(settings, data_dir=tmp_path)
    r = await client.get("/ops/overview", headers=auth("op_anything"))
    assert_error(r, 401, "authentication", "invalid_operator_key")


async def test_a_configured_operator_key_hash_opens_ops(
    client: httpx.AsyncClient, services: Services, settings: Settings, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"op_from_the_vault").hexdigest()
    services.settings = dataclasses.replace(settings, data_dir=tmp_path,
                                            operator_key_sha256=digest)
    r = await client.get("/ops/overview", headers=auth("op_from_the_vault"))
    assert r.status_code == 200, r.text


async def test_the_overview_lists_every_orgs_sessions_newest_first_and_filters_by_status(
    client: httpx.AsyncClient, operator_key: str, new_key: KeyFactory
) -> None:
    first = await create_ok(client, await new_key())
    second = await create_ok(client, await new_key())  # another org
    r = await client.get("/ops/overview", headers=auth(operator_key))
    assert r.status_code == 200, r.text
    overview = r.json()
    ids = [s["id"] for s in overview["sessions"]]
    assert ids.index(second["id"]) < ids.index(first["id"])
    row = next(s for s in overview["sessions"] if s["id"] == first["id"])
    assert row["status"] == "queued" and row["time_to_first_frame_ms"] is None
    assert row["credits"] is None  # no worker claimed it: nothing billable yet
    assert overview["counts_by_status"]["queued"] >= 2
    ended = (await client.get("/ops/overview?status=terminal", headers=auth(operator_key))).json()
    assert first["id"] not in [s["id"] for s in ended["sessions"]]
    r = await client.get("/ops/overview?status=bogus", headers=auth(operator_key))
    assert_error(r, 400, "invalid_request", "invalid_status_filter", "status")


def test_usage_by_day_sums_billable_seconds_per_day_and_tier() -> None:
    day = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def record(sid: str, at: datetime, quality: str, seconds: int) -> UsageRecord:
        return UsageRecord(session_id=sid, org_id="org_1", avatar_id="av_stock_001",
                           quality=quality, started_at=at, billable_seconds=seconds,  # type: ignore[arg-type]
                           minutes=1, credits_milli=1000, final=True)

    records = [record("a", day, "lite", 30), record("b", day + timedelta(hours=1), "lite", 50),
               record("c", day, "pro", 60), record("d", day + timedelta(days=1), "lite", 5),
               record("e", day - timedelta(days=30), "lite", 99)]  # before the window
    rows = usage_by_day(records, since=day - timedelta(days=1))
    assert [(r.day, r.quality, r.billable_seconds, r.sessions) for r in rows] == [
        ("2026-03-02", "lite", 80, 2), ("2026-03-02", "pro", 60, 1), ("2026-03-03", "lite", 5, 1)]


async def test_the_playground_is_on_in_development_and_hands_out_the_dev_key(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    (settings.data_dir / "dev-api-key").write_text("sk_live_dev_for_the_page\n")
    page = await client.get("/playground")
    assert page.status_code == 200 and "<canvas" in page.text
    config = (await client.get("/playground/config")).json()
    assert config["api_key"] == "sk_live_dev_for_the_page"
    assert [a["id"] for a in config["stock_avatars"]] == [
        "av_stock_001", "av_stock_002", "av_stock_003"]
    assert "mock" in config["qualities"] and len(config["samples"]) >= 2
    wav = await client.get(config["samples"][0]["url"])
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    assert (await client.get("/web/capture-worklet.js")).status_code == 200


async def test_the_playground_is_off_in_production_unless_enabled_and_never_gives_a_key(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    (settings.data_dir / "dev-api-key").write_text("sk_live_dev_for_the_page\n")
    services.settings = dataclasses.replace(settings, production=True)
    assert_error(await client.get("/playground"), 404, "not_found", "route_not_found")
    assert_error(await client.get("/playground/config"), 404, "not_found", "route_not_found")
    services.settings = dataclasses.replace(settings, production=True, playground=True)
    assert (await client.get("/playground")).status_code == 200
    assert (await client.get("/playground/config")).json()["api_key"] is None
    # The dashboard page itself is static; its data needs the operator key.
    assert (await client.get("/dashboard")).status_code == 200
