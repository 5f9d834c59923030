"""The LiveKit Agents avatar protocol, avatar side (``audio_source: data_stream``).

First the receiver alone, fed real ``rtc.ByteStreamReader``s and
``rtc.RpcInvocationData``; then the whole chain with livekit-agents' own sender,
``DataStreamAudioOutput`` (what livekit-plugins-protoface installs in the agent):
agent → room → adapter → pipeline → playback reports → agent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.agents.voice.avatar import DataStreamAudioOutput
from livekit.agents.voice.avatar import _datastream_io as official
from livekit.agents.voice.io import PlaybackFinishedEvent

from protoface.api.sessions.livekit_token import PUBLISH_ON_BEHALF
from protoface.domain.session import LiveKitTransport
from protoface.domain.tiers import TIERS
from protoface.worker.pipeline import Pipeline
from protoface.worker.render.mock import MockRenderer
from protoface.worker.transports.livekit import avatar_protocol
from protoface.worker.transports.livekit.avatar_protocol import AvatarAudioReceiver
from protoface.worker.transports.livekit.transport import LiveKitTransportAdapter
from protoface.worker.transports.port import (
    Flush,
    FrameOut,
    Inbound,
    Interrupt,
    Playback,
    Refused,
    SpeechIn,
)
from tests.tokens import on_behalf_of, worker_token
from tests.worker.livekit_fake import FakeLiveKit, participant_info

AGENT = "agent-AJ_1"
WORKER = "protoface-avatar-agent"


def tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """Never zero, so the samples that played can be counted in the output."""
    t = np.arange(int(rate * seconds)) / rate
    mono = (np.sin(2 * np.pi * 220 * t) * 3000 + 5000).astype(np.int16)
    return np.repeat(mono, channels)


def audio_attributes(rate: int = 24_000, channels: int = 1) -> dict[str, str]:
    return {"sample_rate": str(rate), "num_channels": str(channels)}


def clear_from(identity: str) -> rtc.RpcInvocationData:
    return rtc.RpcInvocationData("req-1", identity, "", 5.0, method="lk.clear_buffer")


async def until(condition: object, timeout: float = 3.0) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


def test_wire_names_are_those_of_livekit_agents() -> None:
    assert avatar_protocol.AUDIO_STREAM_TOPIC == official.AUDIO_STREAM_TOPIC
    assert avatar_protocol.RPC_CLEAR_BUFFER == official.RPC_CLEAR_BUFFER
    assert avatar_protocol.RPC_PLAYBACK_STARTED == official.RPC_PLAYBACK_STARTED
    assert avatar_protocol.RPC_PLAYBACK_FINISHED == official.RPC_PLAYBACK_FINISHED
    assert PUBLISH_ON_BEHALF == ATTRIBUTE_PUBLISH_ON_BEHALF


# ── The receiver on its own ─────────────────────────────────────────────────────


@dataclass
class AgentRpc:
    """The agent answering the worker's RPCs (``LocalParticipant.perform_rpc``'s shape)."""

    failures: int = 0
    unsupported: tuple[str, ...] = ()
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    async def __call__(self, *, destination_identity: str, method: str, payload: str) -> str:
        self.calls.append((destination_identity, method, payload))
        if method in self.unsupported:
            raise rtc.RpcError._built_in(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD)
        if self.failures:
            self.failures -= 1
            raise rtc.RpcError._built_in(rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED)
        return "ok"


@pytest.fixture
def fake() -> Iterator[FakeLiveKit]:
    with FakeLiveKit(WORKER) as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[AvatarAudioReceiver, list[Inbound], AgentRpc]]:
    items: list[Inbound] = []
    agent = AgentRpc()
    avatar = AvatarAudioReceiver(items.append, agent, retry_delays=(0.01,) * 4)
    avatar.sender = AGENT
    yield avatar, items, agent
    await avatar.aclose()


def speech_of(items: list[Inbound]) -> np.ndarray:
    return np.concatenate([i.samples for i in items if isinstance(i, SpeechIn)])


async def test_one_stream_is_one_segment_of_16khz_mono_speech_then_its_end(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    reader, handle = fake.reader(audio_attributes(48_000, 2))
    avatar.on_stream(reader, AGENT)
    stereo = tone(48_000, 0.5, channels=2)
    stereo[1::2] = 0  # right channel silent: mono is half the left
    fake.stream_chunk(handle, stereo.astype("<i2").tobytes())
    fake.stream_end(handle)
    await until(lambda: any(isinstance(i, Flush) for i in items))
    assert items[-1] == Flush(reader.info.stream_id)
    assert {i.segment for i in items if isinstance(i, SpeechIn)} == {reader.info.stream_id}
    mono = speech_of(items)
    assert abs(mono.size - 8_000) <= 2
    assert abs(int(mono.max()) - 4000) <= 20


async def test_streams_from_anyone_but_the_sender_are_ignored(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    reader, handle = fake.reader(audio_attributes())
    avatar.on_stream(reader, "someone-else")
    fake.stream_chunk(handle, tone(24_000, 0.1).tobytes())
    fake.stream_end(handle)
    await asyncio.sleep(0.05)
    assert items == []


async def test_a_stream_without_audio_attributes_is_rejected_and_still_finished_for_the_agent(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, agent = receiver
    reader, handle = fake.reader({"sample_rate": "24000"})
    avatar.on_stream(reader, AGENT)
    fake.stream_end(handle)
    await until(lambda: agent.calls)
    assert isinstance(items[0], Refused) and items[0].code == "invalid_audio_stream"
    assert agent.calls == [(AGENT, "lk.playback_finished",
                            '{"playback_position": 0.0, "interrupted": false}')]


async def test_clear_buffer_answers_ok_interrupts_and_discards_the_rest_of_the_segment(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    reader, handle = fake.reader(audio_attributes())
    avatar.on_stream(reader, AGENT)
    fake.stream_chunk(handle, tone(24_000, 0.3).tobytes())
    await until(lambda: speech_of(items).size if any(isinstance(i, SpeechIn) for i in items)
                else False)
    await until(lambda: speech_of(items).size >= 3_000)
    assert avatar.on_clear_buffer(clear_from(AGENT)) == "ok"
    assert items[-1] == Interrupt()
    before = len(items)
    fake.stream_chunk(handle, tone(24_000, 0.3).tobytes())
    fake.stream_end(handle)
    await asyncio.sleep(0.05)
    assert items[before:] == []  # neither the rest of the segment nor its end


async def test_clear_buffer_from_another_participant_is_refused(
    receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    assert avatar.on_clear_buffer(clear_from("someone-else")) == "reject"
    assert items == []


async def test_a_segment_whose_trailer_was_lost_ends_when_the_next_one_starts(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    first, first_handle = fake.reader(audio_attributes())
    avatar.on_stream(first, AGENT)
    fake.stream_chunk(first_handle, tone(24_000, 0.2).tobytes())  # … and no trailer
    second, second_handle = fake.reader(audio_attributes())
    avatar.on_stream(second, AGENT)
    fake.stream_chunk(second_handle, tone(24_000, 0.2).tobytes())
    fake.stream_end(second_handle)
    await until(lambda: Flush(second.info.stream_id) in items)
    first_speech = [i for i in items if isinstance(i, SpeechIn)
                    and i.segment == first.info.stream_id]
    assert sum(i.samples.size for i in first_speech) >= 3_199  # nothing of it was lost
    assert items.index(Flush(first.info.stream_id)) < items.index(Flush(second.info.stream_id))


async def test_an_aborted_stream_ends_its_segment_with_what_arrived(
    fake: FakeLiveKit, receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, items, _ = receiver
    reader, handle = fake.reader(audio_attributes())
    avatar.on_stream(reader, AGENT)
    fake.stream_chunk(handle, tone(24_000, 0.1).tobytes())
    fake.stream_end(handle, error="sender aborted")
    await until(lambda: Flush(reader.info.stream_id) in items)
    assert abs(speech_of(items).size - 1_600) <= 1


async def test_playback_finished_is_retried_briefly_and_delivered_once(
    receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, _, agent = receiver
    agent.failures = 2  # the agent is mid-reconnect
    avatar.report(Playback("s1", finished=True, position=1.25))
    await until(lambda: len(agent.calls) == 3)
    await asyncio.sleep(0.05)
    assert len(agent.calls) == 3
    destination, method, payload = agent.calls[-1]
    assert (destination, method) == (AGENT, "lk.playback_finished")
    # Exactly what the agent side parses.
    assert PlaybackFinishedEvent(**json.loads(payload)) == PlaybackFinishedEvent(
        playback_position=1.25, interrupted=False)


async def test_playback_started_is_not_retried_when_the_agent_did_not_ask_for_it(
    receiver: tuple[AvatarAudioReceiver, list[Inbound], AgentRpc],
) -> None:
    avatar, _, agent = receiver
    agent.unsupported = ("lk.playback_started",)
    avatar.report(Playback("s1", finished=False))
    avatar.report(Playback("s1", finished=True, position=0.5))
    await until(lambda: len(agent.calls) == 2)
    assert [m for _, m, _ in agent.calls] == ["lk.playback_started", "lk.playback_finished"]


async def test_reports_still_queued_are_delivered_before_close_returns() -> None:
    agent = AgentRpc()
    avatar = AvatarAudioReceiver(lambda _: None, agent)
    avatar.sender = AGENT
    avatar.report(Playback("s1", finished=True, position=0.3, interrupted=True))
    await avatar.aclose()
    assert [m for _, m, _ in agent.calls] == ["lk.playback_finished"]


# ── The whole chain, with livekit-agents' own sender ────────────────────────────


class RecordingAdapter(LiveKitTransportAdapter):
    """The real adapter; it also keeps what each tick sent into the room."""

    sent: list[FrameOut]

    async def send(self, frame: FrameOut) -> None:
        self.sent.append(frame)
        await super().send(frame)


@dataclass
class Live:
    fake: FakeLiveKit
    adapter: RecordingAdapter
    pipeline: Pipeline

    def agent_output(self, *, wait_playback_start: bool = False) -> DataStreamAudioOutput:
        # As livekit-plugins-protoface builds it in the agent (it waits for our camera).
        return DataStreamAudioOutput(
            self.fake.agents[AGENT], destination_identity=WORKER, sample_rate=24_000,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO, wait_playback_start=wait_playback_start)

    def spoken(self) -> np.ndarray:
        return np.concatenate([f.audio for f in self.adapter.sent])


@pytest.fixture
async def live(fake: FakeLiveKit) -> AsyncIterator[Live]:
    fake.present.append(participant_info(AGENT))
    fake.agent(AGENT)
    token = worker_token(identity=WORKER, publish_on_behalf=AGENT)
    config = LiveKitTransport(url="ws://livekit.invalid", room_name="demo-room",
                              worker_token_sealed="", worker_identity=WORKER,
                              publish_on_behalf=on_behalf_of(token))
    adapter = RecordingAdapter(config, token)
    adapter.sent = []
    await adapter.connect()
    await adapter.ready({"width": 64, "height": 64})
    pipeline = Pipeline(adapter, MockRenderer(64, 64), TIERS["mock"])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(pipeline.pump_inbound()),
             asyncio.create_task(pipeline.run_output(stop, drain_seconds=0.1))]
    yield Live(fake, adapter, pipeline)
    stop.set()
    await asyncio.wait_for(tasks[1], 3)
    tasks[0].cancel()
    await adapter.close()


async def say(output: DataStreamAudioOutput, samples: np.ndarray, *, flush: bool = True) -> None:
    for i in range(0, samples.size, 240):  # 10 ms frames, faster than real time
        chunk = samples[i : i + 240]
        await output.capture_frame(rtc.AudioFrame(chunk.tobytes(), 24_000, 1, chunk.size))
    if flush:
        output.flush()


async def test_an_agent_segment_plays_on_the_avatar_and_the_agent_hears_its_full_length(
    live: Live,
) -> None:
    output = live.agent_output()
    await say(output, tone(24_000, 1.0))
    finished = await asyncio.wait_for(output.wait_for_playout(), 5)
    assert finished.interrupted is False
    assert finished.playback_position == pytest.approx(1.0, abs=0.001)
    assert abs(int(np.count_nonzero(live.spoken())) - 16_000) <= 2  # all of it went out
    methods = [m for _, m, _ in live.fake.worker_rpcs]
    assert methods == ["lk.playback_started", "lk.playback_finished"]


async def test_the_agent_hears_playback_start_once_the_first_frame_plays_if_it_asks(
    live: Live,
) -> None:
    output = live.agent_output(wait_playback_start=True)
    started: list[int] = []
    output.on("playback_started", lambda _: started.append(
        int(np.count_nonzero(live.spoken()))))
    await say(output, tone(24_000, 0.4))
    await asyncio.wait_for(output.wait_for_playout(), 5)
    assert len(started) == 1
    assert started[0] > 0  # the avatar was already speaking when the agent heard it


async def test_clear_during_a_segment_stops_the_avatar_and_reports_how_far_it_got(
    live: Live,
) -> None:
    output = live.agent_output()
    await say(output, tone(24_000, 3.0))
    await asyncio.sleep(0.5)
    output.clear_buffer()
    finished = await asyncio.wait_for(output.wait_for_playout(), 5)
    assert finished.interrupted is True
    played = int(np.count_nonzero(live.spoken())) / 16_000
    await asyncio.sleep(0.2)
    assert int(np.count_nonzero(live.spoken())) / 16_000 == played  # silent since
    assert finished.playback_position == pytest.approx(played, abs=0.001)
    assert 0.2 <= finished.playback_position <= 1.0
    # The agent speaks again: the next segment plays whole.
    await say(output, tone(24_000, 0.5))
    again = await asyncio.wait_for(output.wait_for_playout(), 5)
    assert (again.interrupted, again.playback_position) == (False, pytest.approx(0.5, abs=0.001))


async def test_clear_while_the_agent_is_still_streaming_discards_what_it_sends_after(
    live: Live,
) -> None:
    output = live.agent_output()
    await say(output, tone(24_000, 1.0), flush=False)  # the segment is still open
    await asyncio.sleep(0.2)
    output.clear_buffer()
    await asyncio.wait_for(output.wait_for_playout(), 5)
    at_clear = int(np.count_nonzero(live.spoken()))
    output.flush()  # the interrupted generation ends: its stream closes
    await say(output, tone(24_000, 0.3))
    again = await asyncio.wait_for(output.wait_for_playout(), 5)
    assert again.playback_position == pytest.approx(0.3, abs=0.001)
    assert abs(int(np.count_nonzero(live.spoken())) - at_clear - 4_800) <= 2
