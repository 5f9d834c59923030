"""The LiveKit transport (BYO room), kept thin: connect with the customer's
``worker_token``, publish the avatar's microphone and camera tracks, translate
frames. Everything behind it is the shared pipeline (see ``worker.transport``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc

from domain.session import TRANSPORT_CONNECT_FAILED, TRANSPORT_UNAUTHORIZED, LiveKitTransport
from worker.audio import MODEL_RATE
from worker.transport import Closed, FrameOut, Inbound, TransportError


def failure_code(message: str) -> str:
    """LiveKit reports a rejected token as an HTTP 401/403 from its signalling endpoint."""
    lowered = message.lower()
    if any(s in lowered for s in ("401", "403", "unauthorized", "permission", "invalid token")):
        return TRANSPORT_UNAUTHORIZED
    return TRANSPORT_CONNECT_FAILED


class LiveKitTransportAdapter:
    observes_audio = True

    def __init__(self, config: LiveKitTransport, worker_token: str) -> None:
        self.config = config
        self._token = worker_token
        self.room = rtc.Room()
        self._audio = rtc.AudioSource(MODEL_RATE, 1)
        self._video: rtc.VideoSource | None = None
        self._left = asyncio.Event()

    async def connect(self) -> None:
        try:
            await self.room.connect(self.config.url, self._token)
        except (rtc.ConnectError, OSError, RuntimeError) as exc:
            raise TransportError(failure_code(str(exc)), f"LiveKit connect failed: {exc}") from exc
        self.room.on("disconnected", lambda *_: self._left.set())
        # Audio first, as LiveKit Agents expects of an avatar.
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio)
        await self.room.local_participant.publish_track(
            audio, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    async def inbound(self) -> AsyncIterator[Inbound]:
        await self._left.wait()
        yield Closed("participant_left")

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
            self._video.capture_frame(rtc.VideoFrame(
                width, height, rtc.VideoBufferType.RGBA, rgba.tobytes()))
        pcm = frame.audio.astype("<i2")
        await self._audio.capture_frame(rtc.AudioFrame(pcm.tobytes(), MODEL_RATE, 1, pcm.size))

    async def error(self, code: str, message: str) -> None:
        return None  # LiveKit has no error channel to the agent; the session fails visibly

    async def close(self) -> None:
        await self.room.disconnect()
