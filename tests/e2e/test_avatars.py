"""Custom avatars across real processes: an upload to ``protoface api`` is built by a
``protoface worker`` (its build job), and a Pipecat session on the ready avatar streams
frames rendered from the stored asset by a worker that loads it from the object store."""

from __future__ import annotations

import asyncio
import time

import httpx
from pipecat_protoface._client import ProtofaceRelayClient, ProtofaceVideoFrame

from tests import speech
from tests.avatars import FACE, NO_FACE
from tests.e2e.conftest import Stack
from tests.e2e.test_relay_session import auth, wait_status


def upload(stack: Stack, key: str, image: bytes) -> dict[str, object]:
    r = httpx.post(f"{stack.url}/v1/avatars", headers=auth(key),
                   files={"image": ("portrait", image, "application/octet-stream")})
    assert r.status_code == 202, r.text
    return dict(r.json())


def built(stack: Stack, key: str, avatar_id: object, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{stack.url}/v1/avatars/{avatar_id}", headers=auth(key)).json()
        if found["status"] != "processing":
            return dict(found)
        assert time.monotonic() < deadline, "the build never finished"
        time.sleep(0.1)


async def test_workers_build_uploads_and_run_sessions_on_them(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    ready, failed = upload(stack, key, FACE), upload(stack, key, NO_FACE)
    assert built(stack, key, ready["id"])["status"] == "ready"
    assert built(stack, key, failed["id"])["failure_reason"] == "No face detected in source image."

    client = ProtofaceRelayClient(api_key=key, api_url=stack.url)
    session_id = await client.start(avatar_id=str(ready["id"]))
    for chunk in speech.chunks(speech.load("greeting.wav")[:16_000]):
        await client.send_audio(chunk, sample_rate=16_000, num_channels=1)
    await client.flush_audio()

    async def first_video() -> ProtofaceVideoFrame:
        async for frame in client.media_frames():
            if isinstance(frame, ProtofaceVideoFrame):
                return frame
        raise AssertionError("no video")

    frame = await asyncio.wait_for(first_video(), 20)
    assert frame.size[0] > 0
    await client.stop()
    ended = await wait_status(stack, key, session_id, "ended", "failed")
    assert ended["status"] == "ended", ended
    assert ended["avatar_id"] == ready["id"]
