"""Credits, end to end: the supervisor process ends a running session whose org ran out
of credits (reason ``credits_exhausted``), the worker drains it, and creates are refused
with 402 until credits come back."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from protoface.api.platform.orgs import load_orgs
from protoface.domain import ids
from protoface.domain import session as s
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect
from tests.e2e.conftest import Stack
from tests.e2e.test_relay_session import wait_status
from tests.e2e.test_workers import create, history, running


def new_org_key(stack: Stack, plan: str) -> tuple[str, str]:
    """A key from ``protoface keys create`` and the name of its (new) org."""
    org = f"org-{uuid.uuid4().hex[:10]}"
    out = subprocess.run(
        [sys.executable, "-m", "protoface", "keys", "create", "--org", org, "--plan", plan,
         "--nats-url", stack.nats.url],
        check=True, capture_output=True, text=True, timeout=30,
    )
    return out.stdout.strip().splitlines()[-1], org


async def spend(stack: Stack, org_name: str, credits: int) -> None:
    """Another session of the org, already over, that used ``credits`` standard minutes.

    Written without ``session.queued``, so no worker ever sees it.
    """
    log = await EventLog.connect(stack.nats.url)
    try:
        org_id = (await load_orgs(log)).by_name[org_name]
        sid, now = ids.new_id(ids.SESSION), datetime.now(UTC)
        envelope = {"session_id": sid, "org_id": org_id}
        created = s.SessionCreated(
            id=ids.new_id(ids.EVENT), **envelope, at=now, avatar_id="av_stock_001",
            quality="standard", idle_timeout_seconds=30, max_duration_seconds=120, metadata={},
            transport=s.PipecatTransport())
        started = s.SessionStarting(id=ids.new_id(ids.EVENT), **envelope, at=now,
                                    worker_id="wrk_elsewhere")
        ended = s.SessionEnded(id=ids.new_id(ids.EVENT), **envelope,
                               at=now + timedelta(minutes=credits), billable_seconds=credits * 60)
        await log.append([created, started, ended], Expect(subjects.session_history(sid), 0))
    finally:
        await log.close()


async def test_a_session_that_exhausts_the_credits_ends_with_credits_exhausted(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key, org = new_org_key(stack, "free")  # 20 credits a month
    session_id, client = await running(stack, key)

    await spend(stack, org, 20)  # the month's credits are gone: the org is overdrawn
    await wait_status(stack, key, session_id, "ended", timeout=10)
    reasons = [e.reason for e in await history(stack, session_id)
               if isinstance(e, s.SessionEnding | s.SessionEnded)]
    assert reasons == ["credits_exhausted", "credits_exhausted"]

    refused = create(stack, key)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "insufficient_credit_balance"
    await client._close_media_websocket()
