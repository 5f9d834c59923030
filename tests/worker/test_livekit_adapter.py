"""The LiveKit adapter's own logic: joining (against the real SDK), which participant it
listens to, room events → the port, the synthetic voice, leaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from aiohttp import web
from livekit import rtc

from protoface.domain.session import (
    TRANSPORT_CONNECT_FAILED,
    TRANSPORT_UNAUTHORIZED,
    LiveKitTransport,
)
from protoface.streams.server import free_port
from protoface.worker.session_runner import end_reason_of
from protoface.worker.transports.livekit.sender import is_sender, wanted_sender
from protoface.worker.transports.livekit.transport import LiveKitTransportAdapter, failure_code
from protoface.worker.transports.port import Closed, Inbound, SpeechIn, TransportError
from tests.tokens import on_behalf_of, worker_token
from tests.worker.livekit_fake import FakeLiveKit, participant_info, publication_info

WORKER = "protoface-avatar-agent"
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


def config(url: str = "ws://livekit.invalid", **fields: object) -> LiveKitTransport:
    return LiveKitTransport(url=url, room_name="demo-room", worker_token_sealed="",
                            worker_identity=WORKER, **fields)  # type: ignore[arg-type]


# ── Joining, against the real SDK ───────────────────────────────────────────────


@pytest.fixture
async def signalling() -> AsyncIterator[tuple[str, list[tuple[int, str]]]]:
    """An HTTP endpoint answering LiveKit's signalling paths the way a LiveKit server
    refuses a join; the test sets (status, body)."""
    answer: list[tuple[int, str]] = [(500, "")]

    async def refuse(_: web.Request) -> web.Response:
        status, body = answer[0]
        return web.Response(status=status, text=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"ws://127.0.0.1:{port}", answer
    await runner.cleanup()


async def connect_error(url: str) -> TransportError:
    adapter = LiveKitTransportAdapter(config(url), worker_token(identity=WORKER))
    try:
        with pytest.raises(TransportError) as raised:
            await asyncio.wait_for(adapter.connect(), 20)
    finally:
        await adapter.close()
    return raised.value


async def test_no_livekit_server_at_the_url_fails_as_connect_failed() -> None:
    error = await connect_error(f"ws://127.0.0.1:{free_port()}")
    assert error.code == TRANSPORT_CONNECT_FAILED
    assert "Connection refused" in error.message


@pytest.mark.parametrize(("status", "body", "code"), [
    (401, "invalid token: token is expired", TRANSPORT_UNAUTHORIZED),
    (403, "no permissions to access the room", TRANSPORT_UNAUTHORIZED),
    (404, "requested room does not exist", TRANSPORT_CONNECT_FAILED),
])
async def test_a_refused_join_fails_with_the_matching_code(
    signalling: tuple[str, list[tuple[int, str]]], status: int, body: str, code: str,
) -> None:
    url, answer = signalling
    answer[0] = (status, body)
    error = await connect_error(url)
    assert error.code == code
    assert body in error.message


def test_digits_in_an_address_are_not_mistaken_for_a_refused_token() -> None:
    message = "engine: signal failure: IO error: ws://10.0.0.1:4013 Connection refused"
    assert failure_code(message) == TRANSPORT_CONNECT_FAILED


# ── Whom it listens to ──────────────────────────────────────────────────────────


def test_it_listens_to_subscribe_to_identity_before_the_tokens_publish_on_behalf() -> None:
    # The token's lk.publish_on_behalf is read once, at create, and kept on the transport
    # (a token that is not a JWT is refused there: tests/api/test_livekit_token.py).
    stored = on_behalf_of(worker_token(identity=WORKER, publish_on_behalf="agent-AJ_1"))
    assert wanted_sender(config(subscribe_to_identity="assistant",
                                publish_on_behalf=stored)) == "assistant"
    assert wanted_sender(config(publish_on_behalf=stored)) == "agent-AJ_1"
    none = on_behalf_of(worker_token(identity=WORKER, publish_on_behalf=None))
    assert wanted_sender(config(publish_on_behalf=none)) is None
    assert wanted_sender(config()) is None  # a session created before the field existed


def test_without_an_identity_only_agent_participants_qualify() -> None:
    agent = rtc.RemoteParticipant(participant_info("agent-1"))
    human = rtc.RemoteParticipant(participant_info("user-1", STANDARD))
    assert is_sender(agent, None) and not is_sender(human, None)
    assert is_sender(human, "user-1") and not is_sender(agent, "user-1")


@pytest.fixture
def fake() -> Iterator[FakeLiveKit]:
    with FakeLiveKit(WORKER) as server:
        yield server


async def joined(fake: FakeLiveKit, token: str | None = None,
                 **fields: object) -> LiveKitTransportAdapter:
    token = token or worker_token(identity=WORKER, publish_on_behalf=None)
    adapter = LiveKitTransportAdapter(
        config(publish_on_behalf=on_behalf_of(token), **fields), token, synthetic_after=0.2)
    await adapter.connect()
    return adapter


async def settle() -> None:
    await asyncio.sleep(0.05)  # room events travel through the SDK's queues


async def next_item(adapter: LiveKitTransportAdapter, timeout: float = 2.0) -> Inbound:
    stream = adapter.inbound()
    return await asyncio.wait_for(anext(stream), timeout)


async def test_it_publishes_its_microphone_before_its_camera(fake: FakeLiveKit) -> None:
    adapter = await joined(fake)
    await adapter.ready({"width": 64, "height": 64})
    assert fake.published == [rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_CAMERA]
    await adapter.close()


async def test_without_a_hint_it_listens_to_the_first_agent_to_join(fake: FakeLiveKit) -> None:
    adapter = await joined(fake)
    fake.join("user-1", STANDARD)
    fake.join("agent-a")
    fake.join("agent-b")
    await settle()
    assert adapter.sender == "agent-a"
    await adapter.close()


async def test_the_identity_the_token_publishes_for_is_found_among_those_present(
    fake: FakeLiveKit,
) -> None:
    fake.present += [participant_info("agent-other"), participant_info("agent-AJ_1")]
    adapter = await joined(fake, worker_token(identity=WORKER, publish_on_behalf="agent-AJ_1"))
    assert adapter.sender == "agent-AJ_1"
    await adapter.close()


async def test_speech_and_clears_from_other_participants_are_ignored(fake: FakeLiveKit) -> None:
    fake.present += [participant_info("agent-other"), participant_info("agent-AJ_1")]
    adapter = await joined(fake, worker_token(identity=WORKER, publish_on_behalf="agent-AJ_1"))
    handle = fake.open_stream("agent-other", topic="lk.audio_stream",
                              attributes={"sample_rate": "16000", "num_channels": "1"})
    fake.stream_chunk(handle, np.full(1600, 3000, np.int16).tobytes())
    fake.stream_end(handle)
    assert await fake.call_worker("agent-other", "lk.clear_buffer", "") == "reject"
    await settle()
    assert adapter._inbox.empty()
    assert await fake.call_worker("agent-AJ_1", "lk.clear_buffer", "") == "ok"
    await adapter.close()


# ── Leaving ─────────────────────────────────────────────────────────────────────


async def test_the_agent_leaving_ends_the_session_as_participant_left(fake: FakeLiveKit) -> None:
    adapter = await joined(fake)
    fake.join("user-1", STANDARD)
    fake.join("agent-a")
    await settle()
    fake.leave("user-1")  # not the one we listen to
    await settle()
    assert adapter._inbox.empty()
    fake.leave("agent-a")
    assert await next_item(adapter) == Closed("participant_left")
    await adapter.close()


async def test_being_removed_from_the_room_ends_the_session_as_participant_left(
    fake: FakeLiveKit,
) -> None:
    adapter = await joined(fake)
    fake.remove_worker(rtc.DisconnectReason.PARTICIPANT_REMOVED)
    assert await next_item(adapter) == Closed("participant_left")
    await adapter.close()


async def test_losing_the_link_for_good_ends_the_session_as_client_disconnected(
    fake: FakeLiveKit,
) -> None:
    adapter = await joined(fake)
    fake.remove_worker(rtc.DisconnectReason.SIGNAL_CLOSE)
    assert await next_item(adapter) == Closed("client_disconnected")
    await adapter.close()


async def test_closing_leaves_the_room_without_reporting_itself_as_left(
    fake: FakeLiveKit,
) -> None:
    adapter = await joined(fake)
    await adapter.close()
    assert fake.disconnected
    await settle()
    assert adapter._inbox.empty()


def test_the_session_records_the_transports_reason_for_closing() -> None:
    assert end_reason_of("participant_left") == "participant_left"
    assert end_reason_of("client_disconnected") == "client_disconnected"
    assert end_reason_of("something else") == "client_disconnected"


# ── audio_source: track ─────────────────────────────────────────────────────────


async def test_with_a_track_source_it_subscribes_to_the_senders_audio_and_nothing_else(
    fake: FakeLiveKit,
) -> None:
    fake.present.append(participant_info("agent-AJ_1"))
    fake.present_tracks["agent-AJ_1"] = [publication_info(
        "TR_a", rtc.TrackKind.KIND_AUDIO, rtc.TrackSource.SOURCE_MICROPHONE)]
    adapter = await joined(fake, worker_token(identity=WORKER, publish_on_behalf="agent-AJ_1"),
                           audio_source="track")
    assert fake.subscribed == 1
    fake.join("agent-other")
    fake.publish_audio("agent-other")
    await settle()
    assert fake.subscribed == 1
    await adapter.close()


async def test_with_data_streams_it_subscribes_to_no_track(fake: FakeLiveKit) -> None:
    fake.present.append(participant_info("agent-AJ_1"))
    fake.present_tracks["agent-AJ_1"] = [publication_info(
        "TR_a", rtc.TrackKind.KIND_AUDIO, rtc.TrackSource.SOURCE_MICROPHONE)]
    adapter = await joined(fake, worker_token(identity=WORKER, publish_on_behalf="agent-AJ_1"))
    assert fake.subscribed == 0
    await adapter.close()


# ── synthetic_audio_if_no_input ─────────────────────────────────────────────────


async def test_with_nobody_in_the_room_the_synthetic_voice_speaks_until_someone_joins(
    fake: FakeLiveKit,
) -> None:
    adapter = await joined(fake, synthetic_audio_if_no_input=True)  # after 0.2 s here
    await asyncio.sleep(0.1)
    assert adapter._inbox.empty()
    first = await next_item(adapter)
    assert isinstance(first, SpeechIn) and first.synthetic and first.samples.any()
    fake.join("agent-a")
    await settle()
    while not adapter._inbox.empty():
        adapter._inbox.get_nowait()
    await asyncio.sleep(0.3)
    assert adapter._inbox.empty()  # the agent is here: the filler stopped
    await adapter.close()


async def test_without_the_demo_flag_an_empty_room_stays_silent(fake: FakeLiveKit) -> None:
    adapter = await joined(fake)
    await asyncio.sleep(0.4)
    assert adapter._inbox.empty()
    await adapter.close()
