"""A Pipecat relay session, end to end, driven by the official ``pipecat-protoface`` client
against real processes: API, supervisor, worker, NATS."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime

import aiohttp
import httpx
import numpy as np
from pipecat_protoface._client import (
    ProtofaceAudioFrame,
    ProtofaceRelayClient,
    ProtofaceVideoFrame,
)

from protoface.streams import records
from tests import speech
from tests.e2e.conftest import Stack


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def session(stack: Stack, key: str, session_id: str) -> dict[str, object]:
    response = httpx.get(f"{stack.url}/v1/sessions/{session_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_status(stack: Stack, key: str, session_id: str, *statuses: str,
                      timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        found = session(stack, key, session_id)
        if found["status"] in statuses:
            return found
        assert time.monotonic() < deadline, f"still {found['status']}, wanted {statuses}"
        await asyncio.sleep(0.05)


def ts(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


async def test_relay_session_streams_synchronized_media_and_bills_what_it_ran(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=2)
    key = stack.new_key("launch")
    client = ProtofaceRelayClient(api_key=key, api_url=stack.url)
    session_id = await client.start(avatar_id="av_stock_001")
    utterance = speech.load("greeting.wav")[: 16_000 * 2]  # 2 s of real speech
    for chunk in speech.chunks(utterance):
        await client.send_audio(chunk, sample_rate=16_000, num_channels=1)
    await client.flush_audio()

    received: list[ProtofaceVideoFrame | ProtofaceAudioFrame] = []

    async def collect() -> None:
        async for frame in client.media_frames():
            received.append(frame)
            if len(received) >= 2 * 75:  # 3 s at 25 fps: video and audio per tick
                return

    await asyncio.wait_for(collect(), 20)
    await client.stop()
    ended = await wait_status(stack, key, session_id, "ended")

    videos = [f for f in received if isinstance(f, ProtofaceVideoFrame)]
    audios = [f for f in received if isinstance(f, ProtofaceAudioFrame)]
    # Each tick sends its video frame, then the speech that plays with it.
    kinds = [type(f).__name__ for f in received[:20]]
    assert kinds == ["ProtofaceVideoFrame", "ProtofaceAudioFrame"] * 10
    pts = [v.pts for v in videos]
    assert all(a is not None and b is not None and b > a for a, b in itertools.pairwise(pts))
    assert videos[0].size == (256, 256) or videos[0].size == (512, 512)
    # The speech comes back, in order, within the frames (nothing lost, nothing invented).
    played = np.concatenate([np.frombuffer(a.audio, dtype="<i2") for a in audios])
    heard, said = int(np.flatnonzero(played)[0]), int(np.flatnonzero(utterance)[0])
    got, want = played[heard : heard + 8000], utterance[said : said + 8000]
    diff = np.flatnonzero(got != want)
    where = slice(max(0, diff[0] - 3), diff[0] + 5) if diff.size else slice(0)
    assert diff.size == 0, (heard, said, diff[:10], got[where], want[where])

    usage = ended["usage"]
    assert isinstance(usage, dict) and usage["frames"] > 0
    assert ended["first_frame_at"] is not None and ended["started_at"] is not None
    ran = (ts(ended["ended_at"]) - ts(ended["first_frame_at"])).total_seconds()
    assert abs(usage["billable_seconds"] - ran) <= 1.0


async def test_interrupt_drops_queued_speech_within_200ms(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=2)
    key = stack.new_key("launch")
    client = ProtofaceRelayClient(api_key=key, api_url=stack.url)
    await client.start(avatar_id="av_stock_001")
    tone = (np.sin(np.arange(16_000 * 6) * 2 * np.pi * 200 / 16_000) * 8000).astype("<i2")
    for chunk in speech.chunks(tone):
        await client.send_audio(chunk, sample_rate=16_000, num_channels=1)

    interrupted_at: float | None = None
    silent_after: float | None = None
    spoken = 0
    async for frame in client.media_frames():
        if not isinstance(frame, ProtofaceAudioFrame):
            continue
        samples = np.frombuffer(frame.audio, dtype="<i2")
        spoken += int(np.count_nonzero(samples))
        if interrupted_at is None and spoken > 16_000:  # one second in: interrupt
            interrupted_at = time.monotonic()
            await client.interrupt()
        elif interrupted_at is not None and not samples.any():
            silent_after = time.monotonic() - interrupted_at
            break
    await client.stop()
    assert silent_after is not None and silent_after <= 0.2
    assert spoken < 16_000 * 3  # the rest of the six seconds was dropped


async def test_ready_comes_first_on_the_raw_socket(stack: Stack, workers: list[object]) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    created = httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                         json={"avatar_id": "av_stock_001", "quality": "mock"}).json()
    relay = created["relay"]
    assert relay["protocol"] == "protoface.pipecat.media.v1"
    async with aiohttp.ClientSession() as http, http.ws_connect(
        relay["media_url"], protocols=(relay["protocol"], relay["media_token"])
    ) as ws:
        assert ws.protocol == relay["protocol"]
        first = records.decode(await ws.receive_bytes(timeout=10))
        assert first.kind is records.Kind.READY
        assert first.header["session_id"] == created["session"]["id"]
        second = records.decode(await ws.receive_bytes(timeout=10))
        assert second.kind is records.Kind.VIDEO
        assert {"width", "height", "encoding", "frame_index", "timestamp_ms"} <= set(second.header)


async def test_media_token_only_opens_its_own_session(stack: Stack, workers: list[object]) -> None:
    key = stack.new_key("launch")
    stack.worker(slots=2)
    a = httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                   json={"avatar_id": "av_stock_001"}).json()
    b = httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                   json={"avatar_id": "av_stock_001"}).json()
    wrong = b["relay"]["media_url"]
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(wrong, protocols=("protoface.pipecat.media.v1",
                                                         a["relay"]["media_token"])) as ws:
                message = await ws.receive(timeout=5)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 4404
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status in (403, 404)


async def test_malformed_records_get_an_error_record_and_the_session_goes_on(
    stack: Stack, workers: list[object]
) -> None:
    stack.worker(slots=1)
    key = stack.new_key("launch")
    created = httpx.post(f"{stack.url}/v1/pipecat/sessions", headers=auth(key),
                         json={"avatar_id": "av_stock_001", "quality": "mock"}).json()
    relay = created["relay"]
    async with aiohttp.ClientSession() as http, http.ws_connect(
        relay["media_url"], headers={"Authorization": f"Bearer {relay['media_token']}"},
        protocols=(relay["protocol"],),
    ) as ws:
        for garbage in (b"\x00\x00", b"\x00\x00\x00\x09\x01\x00\x00\x00\x09{}",
                        records.encode(records.Kind.AUDIO, {"sample_rate": "fast"}, b"\x00\x00"),
                        records.encode(records.Kind.VIDEO, {}, b"")):
            await ws.send_bytes(garbage)
        errors: list[str] = []
        videos = 0
        while len(errors) < 4 or videos < 5:
            record = records.decode(await ws.receive_bytes(timeout=10))
            if record.kind is records.Kind.ERROR:
                errors.append(record.header["code"])
            elif record.kind is records.Kind.VIDEO and len(errors) == 4:
                videos += 1  # frames keep flowing after every error
        assert errors == ["invalid_record", "invalid_record", "invalid_sample_rate",
                          "unexpected_record"]
    found = session(stack, key, created["session"]["id"])
    assert found["status"] in ("running", "ending", "ended")
