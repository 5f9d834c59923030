"""Contract: ``client.usage.summary`` of the official ``protoface-sdk`` (strict models)
against ``protoface api`` as a process, after a session a simulated worker ran."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from protoface_sdk import InvalidRequestError, ProtofaceClient, QualityTier, UsageSummary

from protoface.domain import ids, session
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect
from tests.conftest import LiveServer
from tests.tokens import livekit_body


async def act_as_worker(log: EventLog, session_id: str, command: session.Command) -> None:
    """Decide ``command`` on the session's history in the log and append it, as a worker does."""
    events, version = await log.load(subjects.session_history(session_id))
    state = session.fold(events)  # type: ignore[arg-type]
    decided = session.decide(command, state, lambda: ids.new_id(ids.EVENT))
    await log.append(decided, Expect(subjects.session_history(session_id), version))


async def summary_once(client: ProtofaceClient, want_sessions: int, **period: str) -> UsageSummary:
    """The summary, once the server's projection has applied the simulated worker's events."""
    deadline = time.monotonic() + 10
    while True:
        found = client.usage.summary(**period)
        if found.sessions == want_sessions or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_usage_summary_validates_as_the_sdk_model(
    live_server: LiveServer, event_log: EventLog
) -> None:
    key = live_server.new_key("launch")
    with ProtofaceClient(key, base_url=live_server.url, max_retries=0) as client:
        sid = client.sessions.create(livekit_body(quality="pro")).id
        now = datetime.now(UTC)
        await act_as_worker(event_log, sid, session.Claim(session_id=sid, now=now,
                                                          worker_id="wrk_contract"))
        await act_as_worker(event_log, sid, session.ReportFirstFrame(session_id=sid, now=now))
        await act_as_worker(event_log, sid, session.Finish(
            session_id=sid, now=now + timedelta(seconds=62), frames=1_525, billable_seconds=61))

        current = await summary_once(client, 1, period="current_month")
        assert isinstance(current, UsageSummary)
        assert (current.billable_seconds, current.sessions) == (61, 1)
        assert current.by_quality == {QualityTier.pro: 61}
        assert current.period_start <= now < current.period_end

        start = (now - timedelta(minutes=1)).isoformat()
        end = (now + timedelta(minutes=1)).isoformat()
        ranged = client.usage.summary(period_start=start, period_end=end)
        assert (ranged.sessions, ranged.period_start, ranged.period_end) == (
            1, datetime.fromisoformat(start), datetime.fromisoformat(end))
        previous = client.usage.summary(period="previous_month")
        assert (previous.sessions, previous.billable_seconds) == (0, 0)
        assert previous.period_end == current.period_start

        with pytest.raises(InvalidRequestError) as caught:
            client.usage.summary(period="current_month", period_start=start)
        assert (caught.value.status, caught.value.code, caught.value.param) == (
            400, "period_conflict", "period")

    quota = httpx.get(f"{live_server.url}/v1/billing/quota", timeout=10,
                      headers={"Authorization": f"Bearer {key}"}).json()
    assert (quota["used_credits"], quota["balance_credits"]) == (4, 2_496)
