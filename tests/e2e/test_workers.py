"""Workers: claiming, capacity, liveness, draining, and the rules that end a session."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime

import httpx
from pipecat_protoface._client import ProtofaceRelayClient

from protoface.domain import session as s
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from tests.e2e.conftest import HEARTBEAT, Stack
from tests.e2e.test_relay_session import auth, ts, wait_status


def create(stack: Stack, key: str, **body: object) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                      json={"avatar_id": "av_stock_001", **body})


async def history(stack: Stack, session_id: str) -> list[s.Event]:
    log = await EventLog.connect(stack.nats.url)
    try:
        events, _ = await log.load(subjects.session_history(session_id))
    finally:
        await log.close()
    return events  # type: ignore[return-value]


async def running(stack: Stack, key: str, **body: object) -> tuple[str, ProtofaceRelayClient]:
    """A session whose client is connected and whose first frame has been rendered."""
    client = ProtofaceRelayClient(api_key=key, api_url=stack.url)
    session_id = await client.start(avatar_id="av_stock_001", **body)  # type: ignore[arg-type]
    await wait_status(stack, key, session_id, "running")
    return session_id, client


async def test_two_workers_racing_claim_each_session_exactly_once(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=4)
    stack.worker(slots=4)
    key = stack.new_key("launch")
    clients = [await running(stack, key) for _ in range(6)]
    claims: dict[str, int] = {}
    for session_id, client in clients:
        starting = [e for e in await history(stack, session_id) if isinstance(e, s.SessionStarting)]
        assert len(starting) == 1
        claims[starting[0].worker_id] = claims.get(starting[0].worker_id, 0) + 1
        await client.stop()
    assert sum(claims.values()) == 6


async def test_no_free_slot_answers_503_at_capacity_and_creates_nothing(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    _, client = await running(stack, key)
    refused = create(stack, key)
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable", "at_capacity")
    assert int(refused.headers["Retry-After"]) >= 1
    listed = httpx.get(f"{stack.url}/v1/sessions", headers=auth(key)).json()["data"]
    assert len(listed) == 1
    await client.stop()


async def test_sigkilled_worker_is_lost_within_three_heartbeats_and_frees_the_org(
    stack: Stack, workers: list[object]
) -> None:
    doomed = stack.worker(slots=1)
    key = stack.new_key("free")  # one concurrent session
    session_id, client = await running(stack, key)
    killed_at = datetime.now(UTC)
    doomed.send_signal(signal.SIGKILL)
    failed = await wait_status(stack, key, session_id, "failed", timeout=10)
    assert failed["failure"] == {
        "code": "worker_lost", "message": "The worker running this session stopped responding."
    }
    assert (ts(failed["failed_at"]) - killed_at).total_seconds() <= 3 * HEARTBEAT + 0.25
    await client.stop()
    stack.worker(slots=1)
    again = create(stack, key)
    assert again.status_code == 201  # the org's one slot is free again
    again_id = again.json()["session"]["id"]
    await wait_status(stack, key, again_id, "starting", "running")
    httpx.post(f"{stack.url}/v1/sessions/{again_id}/end", headers=auth(key))


async def test_sigterm_drains_sessions_to_ended_with_reason_shutdown(
    stack: Stack, workers: list[object]
) -> None:
    draining = stack.worker(slots=2)
    key = stack.new_key("launch")
    session_id, client = await running(stack, key)
    started = time.monotonic()
    draining.send_signal(signal.SIGTERM)
    await wait_status(stack, key, session_id, "ended", timeout=15)
    assert draining.wait(15) == 0
    assert time.monotonic() - started < 12
    ended = [e for e in await history(stack, session_id) if isinstance(e, s.SessionEnded)]
    assert [e.reason for e in ended] == ["shutdown"]
    await client.stop()


async def test_max_duration_ends_the_session(stack: Stack, workers: list[object]) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    session_id, client = await running(stack, key, max_duration_seconds=2)
    ended = await wait_status(stack, key, session_id, "ended", timeout=10)
    lasted = (ts(ended["ended_at"]) - ts(ended["started_at"])).total_seconds()
    assert 2.0 <= lasted <= 4.5
    reasons = [e.reason for e in await history(stack, session_id)
               if isinstance(e, s.SessionEnding | s.SessionEnded)]
    assert reasons == ["max_duration", "max_duration"]
    await client.stop()


async def test_idle_timeout_ends_a_session_that_hears_nothing(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    client = ProtofaceRelayClient(api_key=key, api_url=stack.url)
    created = create(stack, key, idle_timeout_seconds=1).json()
    await client._connect_media_websocket(created["relay"])  # the official client's own socket
    ended = await wait_status(stack, key, created["session"]["id"], "ended", timeout=10)
    lasted = (ts(ended["ended_at"]) - ts(ended["started_at"])).total_seconds()
    assert 1.0 <= lasted <= 3.5
    reasons = [e.reason for e in await history(stack, created["session"]["id"])
               if isinstance(e, s.SessionEnded)]
    assert reasons == ["idle_timeout"]
    await client._close_media_websocket()


async def test_client_disconnect_ends_the_session(stack: Stack, workers: list[object]) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    session_id, client = await running(stack, key)
    await client._close_media_websocket()
    await wait_status(stack, key, session_id, "ended", timeout=10)
    reasons = [e.reason for e in await history(stack, session_id)
               if isinstance(e, s.SessionEnded)]
    assert reasons == ["client_disconnected"]
    await asyncio.sleep(0)


async def test_end_reaches_the_worker_within_a_second(stack: Stack, workers: list[object]) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    session_id, client = await running(stack, key)
    requested = datetime.now(UTC)
    ending = httpx.post(f"{stack.url}/v1/sessions/{session_id}/end", headers=auth(key)).json()
    assert ending["status"] in ("ending", "ended")
    ended = await wait_status(stack, key, session_id, "ended", timeout=5)
    # Nothing was queued to say, so the drain is immediate: the end is the worker's reaction.
    assert (ts(ended["ended_at"]) - requested).total_seconds() < 1.0
    await client._close_media_websocket()


def test_status_reports_workers_as_they_come_and_go(stack: Stack, workers: list[object]) -> None:
    def workers_status() -> str:
        body = httpx.get(f"{stack.url}/v1/status").json()
        return {c["name"]: c["status"] for c in body["components"]}["workers"]

    assert workers_status() == "outage"  # no worker: creates are refused (503)
    stack.worker(slots=1)
    assert workers_status() == "operational"


async def test_ending_a_session_whose_client_never_connected_frees_the_worker_at_once(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    created = create(stack, key).json()  # nobody opens the media socket
    session_id = created["session"]["id"]
    await wait_status(stack, key, session_id, "starting")
    httpx.post(f"{stack.url}/v1/sessions/{session_id}/end", headers=auth(key))
    ended = await wait_status(stack, key, session_id, "ended", timeout=5)
    assert ended["first_frame_at"] is None
    stack.wait_for(lambda: stack.free_slots() == 1, 5, "the slot was not freed")
