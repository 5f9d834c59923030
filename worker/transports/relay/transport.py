"""The relay transport, worker side: records from the relay tier's WebSocket arrive
over a NATS media channel; this module only translates records ↔ the port."""

from __future__ import annotations

from collections.abc import AsyncIterator

from protoface.domain.session import TRANSPORT_CONNECT_FAILED
from protoface.streams import records
from protoface.streams.eventlog import EventLog
from protoface.streams.media import MediaChannel
from protoface.worker.audio import MODEL_RATE, Resampler, to_mono_int16
from protoface.worker.render.encode import encode
from protoface.worker.transports.port import (
    Closed,
    Flush,
    FrameOut,
    Inbound,
    Interrupt,
    Playback,
    Refused,
    SpeechIn,
    TransportError,
)

MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8


class RelayTransport:
    observes_audio = True

    def __init__(
        self, log: EventLog, session_id: str, sample_rate: int = MODEL_RATE, *,
        encoding: str = "jpeg", jpeg_quality: int = 80, link_timeout: float = 30.0,
    ) -> None:
        self.link_timeout = link_timeout
        self._log = log
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality
        self._sid = session_id
        self._channel: MediaChannel | None = None
        self._resamplers: dict[int, Resampler] = {}
        self.announced_rate = sample_rate

    async def connect(self) -> None:
        """Wait for the client's socket (via the relay tier), which then flushes
        the speech it buffered before we were there."""
        self._channel = await MediaChannel.open(self._log, self._sid, "worker")
        try:
            await self._channel.link(self.link_timeout)
        except TimeoutError:
            raise TransportError(TRANSPORT_CONNECT_FAILED,
                                 "The client never opened the media socket.") from None

    async def inbound(self) -> AsyncIterator[Inbound]:
        assert self._channel is not None
        async for raw in self._channel.records():
            item = self._translate(raw)
            if item is not None:
                yield item
            if isinstance(item, Closed):
                return
        yield Closed()  # the relay tier reported the socket closed

    def _translate(self, raw: bytes) -> Inbound | None:
        try:
            record = records.decode(raw)
        except records.RecordError as exc:
            return Refused("invalid_record", str(exc))
        match record.kind:
            case records.Kind.AUDIO:
                return self._speech(record)
            case records.Kind.FLUSH:
                return Flush()
            case records.Kind.INTERRUPT:
                return Interrupt()
            case records.Kind.CLOSE:
                return Closed("client_disconnected")
            case records.Kind.LISTEN_AUDIO | records.Kind.METRICS:
                return None  # the user's side of the call: nothing to render
        return Refused("unexpected_record", f"{record.kind.name} is not sent by clients")

    def _speech(self, record: records.Record) -> Inbound:
        rate = record.header.get("sample_rate", self.announced_rate)
        channels = record.header.get("num_channels", 1)
        if not isinstance(rate, int) or not 1000 <= rate <= MAX_SAMPLE_RATE:
            return Refused("invalid_sample_rate", f"sample_rate must be 1000..{MAX_SAMPLE_RATE}")
        if not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            return Refused("invalid_num_channels", f"num_channels must be 1..{MAX_CHANNELS}")
        if len(record.blob) % (2 * channels):
            return Refused("invalid_audio", "AUDIO blob is not whole PCM16 frames")
        mono = to_mono_int16(record.blob, channels)
        resample = self._resamplers.setdefault(rate, Resampler(rate))
        return SpeechIn(resample(mono))

    async def ready(self, info: dict[str, object]) -> None:
        await self._send(records.encode(records.Kind.READY, info))

    async def send(self, frame: FrameOut) -> None:
        if frame.frame is not None:
            height, width = frame.frame.shape[:2]
            image = encode(frame.frame, self.encoding, self.jpeg_quality)
            await self._send(records.encode(records.Kind.VIDEO, {
                "width": width, "height": height, "encoding": self.encoding,
                "frame_index": frame.index, "timestamp_ms": frame.timestamp_ms,
            }, image))
        await self._send(records.encode(records.Kind.AUDIO, {
            "sample_rate": MODEL_RATE, "num_channels": 1, "timestamp_ms": frame.timestamp_ms,
        }, frame.audio.astype("<i2").tobytes()))

    def playback(self, event: Playback) -> None:
        return None  # relay speech carries no segment ids, so the pipeline never reports

    async def error(self, code: str, message: str) -> None:
        await self._send(records.error(code, message))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.signal("detached")
            await self._channel.close()
            self._channel = None

    async def _send(self, record: bytes) -> None:
        if self._channel is not None:
            await self._channel.send(record)
