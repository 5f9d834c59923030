"""Contract: livekit-plugins-protoface's ``ProtofaceAPI``, unchanged, against real
processes (API, supervisor, worker, NATS), with a worker token minted by livekit-api
exactly as the plugin's ``AvatarSession`` mints it. No LiveKit server answers at
``transport.url``: the session must fail cleanly, with ``transport_connect_failed``."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import httpx
from livekit import api
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.plugins.protoface import DEFAULT_STOCK_AVATAR_ID
from livekit.plugins.protoface.api import ProtofaceAPI
from livekit.plugins.protoface.avatar import _AVATAR_AGENT_IDENTITY, _AVATAR_AGENT_NAME

from protoface.streams.server import free_port
from tests.e2e.conftest import Stack


def plugin_worker_token(room: str, agent_identity: str) -> str:
    """``AvatarSession._mint_worker_token``, step for step."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True)
    return (
        api.AccessToken(api_key="APIcustomer", api_secret="customer-secret-" + "x" * 32)
        .with_kind("agent")
        .with_identity(_AVATAR_AGENT_IDENTITY)
        .with_name(_AVATAR_AGENT_NAME)
        .with_grants(grants)
        .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: agent_identity})
        .to_jwt()
    )


async def wait_for_status(stack: Stack, key: str, session_id: str, status: str,
                          timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=stack.url,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            found = (await http.get(f"/v1/sessions/{session_id}")).json()
            if found["status"] == status:
                return dict(found)
            assert time.monotonic() < deadline, f"still {found['status']}, wanted {status}"
            await asyncio.sleep(0.05)


async def test_a_plugin_session_fails_cleanly_when_no_livekit_server_answers(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    room = f"room-{uuid.uuid4().hex[:8]}"
    nobody = f"ws://127.0.0.1:{free_port()}"  # a free loopback port: connection refused
    async with aiohttp.ClientSession() as http:
        client = ProtofaceAPI(api_key=key, api_url=stack.url, session=http)
        token = plugin_worker_token(room, "agent-AJ_contract")
        # The transport body of AvatarSession.start(), field for field.
        created = await client.start_session(avatar_id=DEFAULT_STOCK_AVATAR_ID, transport={
            "type": "livekit", "url": nobody, "room_name": room, "worker_token": token,
            "worker_identity": _AVATAR_AGENT_IDENTITY, "audio_source": "data_stream",
        })
        assert isinstance(created["id"], str)
        assert created["transport"]["audio_source"] == "data_stream"
        assert created["transport"]["worker_token"] != token  # never echoed in clear

        started = time.monotonic()
        failed = await wait_for_status(stack, key, created["id"], "failed")
        assert time.monotonic() - started < 10
        failure = failed["failure"]
        assert isinstance(failure, dict)
        assert failure["code"] == "transport_connect_failed"
        assert "LiveKit connect failed" in failure["message"]
        assert failed["first_frame_at"] is None  # nothing was shown, nothing is billed
        assert failed["usage"]["billable_seconds"] == 0  # type: ignore[index]

        # The plugin's aclose() ends the session it started: on a failed one that is a
        # no-op, not an error.
        ended = await client.end_session(created["id"])
        assert ended["status"] == "failed"
    # The worker slot is free again for the next session.
    stack.wait_for(lambda: stack.free_slots() == 1, 10, "the failed session kept its slot")
