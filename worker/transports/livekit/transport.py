"""The LiveKit transport (BYO room), kept thin: join with the customer's ``worker_token``,
publish the avatar's microphone then camera, route room events to the receiver for
``audio_source`` (``livekit_avatar`` for data streams, ``livekit_track`` for a track),
and leave when the session ends. Everything behind it is the shared pipeline
(``worker.transport``); pacing is the pipeline's, one tick = one frame + its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import numpy as np
from livekit import rtc

from protoface.domain.session import (
    TRANSPORT_CONNECT_FAILED,
    TRANSPORT_UNAUTHORIZED,
    LiveKitTransport,
)
from protoface.worker.audio import MODEL_RATE
from protoface.worker.transports.livekit import synthetic
from protoface.worker.transports.livekit.avatar_protocol import (
    AUDIO_STREAM_TOPIC,
    RPC_CLEAR_BUFFER,
    AvatarAudioReceiver,
)
from protoface.worker.transports.livekit.sender import is_sender, wanted_sender
from protoface.worker.transports.livekit.track import track_speech
from protoface.worker.transports.port import (
    Closed,
    FrameOut,
    Inbound,
    Playback,
    TransportError,
    until_closed,
)

log = logging.getLogger("protoface.worker.livekit")

SYNTHETIC_AFTER_SECONDS = 10.0
# Per signalling attempt (the SDK retries a few times); a refused port fails at once.
CONNECT_ATTEMPT_SECONDS = 5.0
# The server removed us or closed the room: we left the room, as the agent leaving does.
# Other final disconnects are the link dropping for good.
_LEFT = frozenset({
    rtc.DisconnectReason.PARTICIPANT_REMOVED, rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.ROOM_CLOSED, rtc.DisconnectReason.DUPLICATE_IDENTITY,
})
_HTTP_STATUS = re.compile(r"\b(\d{3}) [A-Z]")


def failure_code(message: str) -> str:
    """LiveKit refuses a token with HTTP 401/403 on its signalling endpoint, which the SDK
    reports as ``… client error: 401 Unauthorized - …``. A missing room (404), a refused
    or unreachable server and everything else is a failed connection."""
    status = _HTTP_STATUS.search(message)
    if status and status.group(1) in ("401", "403"):
        return TRANSPORT_UNAUTHORIZED
    return TRANSPORT_CONNECT_FAILED


def left_reason(reason: int) -> str:
    return "participant_left" if reason in _LEFT else "client_disconnected"


class LiveKitTransportAdapter:
    observes_audio = True

    def __init__(self, config: LiveKitTransport, worker_token: str, *,
                 synthetic_after: float = SYNTHETIC_AFTER_SECONDS) -> None:
        self.config = config
        self._token = worker_token
        self._synthetic_after = synthetic_after
        self.room = rtc.Room()
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self._wanted = wanted_sender(config)
        self.sender: str | None = None
        self._sender_joined = asyncio.Event()
        self._avatar = (AvatarAudioReceiver(self._inbox.put_nowait, self._perform_rpc)
                        if config.audio_source == "data_stream" else None)
        self._audio = rtc.AudioSource(MODEL_RATE, 1)
        self._video: rtc.VideoSource | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._leaving = False

    async def connect(self) -> None:
        room = self.room
        room.on("participant_connected", self._on_participant)
        room.on("participant_disconnected", self._on_participant_left)
        room.on("track_published", self._on_track_published)
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("disconnected", self._on_disconnected)
        try:
            # Nothing is subscribed unless we ask: we need at most the sender's audio.
            await room.connect(self.config.url, self._token, rtc.RoomOptions(
                auto_subscribe=False, connect_timeout=CONNECT_ATTEMPT_SECONDS))
        except rtc.ConnectError as exc:  # its str() is empty: the text is in .message
            raise TransportError(failure_code(exc.message),
                                 f"LiveKit connect failed: {exc.message}") from exc
        except (OSError, RuntimeError) as exc:
            raise TransportError(TRANSPORT_CONNECT_FAILED,
                                 f"LiveKit connect failed: {exc}") from exc
        if self._avatar is not None:
            room.local_participant.register_rpc_method(
                RPC_CLEAR_BUFFER, self._avatar.on_clear_buffer)
            room.register_byte_stream_handler(AUDIO_STREAM_TOPIC, self._avatar.on_stream)
        # Audio first: an agent's DataStreamAudioOutput waits for our tracks.
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio)
        await room.local_participant.publish_track(
            audio, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        for participant in list(room.remote_participants.values()):
            self._on_participant(participant)
        if self.config.synthetic_audio_if_no_input:
            self._spawn(self._synthetic_until_someone_speaks())

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for item in until_closed(self._inbox):
            yield item

    async def ready(self, info: dict[str, object]) -> None:
        width, height = int(info["width"]), int(info["height"])  # type: ignore[call-overload]
        self._video = rtc.VideoSource(width, height)
        video = rtc.LocalVideoTrack.create_video_track("avatar-video", self._video)
        await self.room.local_participant.publish_track(
            video, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))

    async def send(self, frame: FrameOut) -> None:
        if frame.frame is not None and self._video is not None:
            height, width = frame.frame.shape[:2]
            rgba = np.concatenate(
                [frame.frame, np.full((height, width, 1), 255, np.uint8)], axis=2)
            self._video.capture_frame(
                rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes()),
                timestamp_us=frame.timestamp_ms * 1000)
        pcm = frame.audio.astype("<i2")
        await self._audio.capture_frame(rtc.AudioFrame(pcm.tobytes(), MODEL_RATE, 1, pcm.size))

    def playback(self, event: Playback) -> None:
        if self._avatar is not None:
            self._avatar.report(event)

    async def error(self, code: str, message: str) -> None:
        return None  # LiveKit has no error channel to the agent; the session fails visibly

    async def close(self) -> None:
        """Tell the agent how its last segments ended, then leave the room."""
        self._leaving = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._avatar is not None:
            await self._avatar.aclose()
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        await self._audio.aclose()
        if self._video is not None:
            await self._video.aclose()

    # ── Room events ─────────────────────────────────────────────────────────────

    def _on_participant(self, participant: rtc.RemoteParticipant) -> None:
        if self.sender is not None or not is_sender(participant, self._wanted):
            return
        self.sender = participant.identity
        if self._avatar is not None:
            self._avatar.sender = participant.identity
        self._sender_joined.set()
        log.info("listening to participant", extra={"identity": participant.identity,
                                                    "audio_source": self.config.audio_source})
        for publication in participant.track_publications.values():
            self._on_track_published(publication, participant)

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.sender and not self._leaving:
            if self._avatar is not None:
                self._avatar.sender = None  # nobody left to report playback to
            self._inbox.put_nowait(Closed("participant_left"))

    def _on_disconnected(self, reason: int) -> None:
        if not self._leaving:  # our own close() disconnects too
            if self._avatar is not None:
                self._avatar.sender = None  # out of the room: reports cannot reach anyone
            log.info("out of the room", extra={
                "reason": rtc.DisconnectReason.Name(reason)})  # type: ignore[arg-type]
            self._inbox.put_nowait(Closed(left_reason(reason)))

    def _on_track_published(self, publication: rtc.RemoteTrackPublication,
                            participant: rtc.RemoteParticipant) -> None:
        if (self.config.audio_source == "track" and participant.identity == self.sender
                and publication.kind == rtc.TrackKind.KIND_AUDIO):
            publication.set_subscribed(True)

    def _on_track_subscribed(self, track: rtc.Track, publication: rtc.RemoteTrackPublication,
                             participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.sender and track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._listen_to_track(track))

    # ── Helpers ─────────────────────────────────────────────────────────────────

    async def _perform_rpc(self, *, destination_identity: str, method: str, payload: str) -> str:
        return await self.room.local_participant.perform_rpc(
            destination_identity=destination_identity, method=method, payload=payload)

    async def _listen_to_track(self, track: rtc.Track) -> None:
        # The SDK resamples to the model rate; the stream ends when the track goes.
        stream = rtc.AudioStream.from_track(track=track, sample_rate=MODEL_RATE, num_channels=1)
        try:
            await track_speech(stream, self._inbox.put_nowait)
        finally:
            await stream.aclose()

    async def _synthetic_until_someone_speaks(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sender_joined.wait(), self._synthetic_after)
            return
        log.info("nobody joined: speaking the synthetic voice")
        voice = asyncio.create_task(synthetic.speak(self._inbox.put_nowait))
        try:
            await self._sender_joined.wait()
        finally:
            voice.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
