"""The avatar side of the LiveKit Agents avatar protocol (``audio_source: data_stream``).

The agent's ``DataStreamAudioOutput`` (livekit-agents) sends each speech segment as one
byte stream on ``lk.audio_stream`` (attributes ``sample_rate``, ``num_channels``; int16
PCM), interrupts with the RPC ``lk.clear_buffer``, and waits for ``lk.playback_started``
and ``lk.playback_finished {"playback_position": s, "interrupted": bool}`` — one finish
per segment, or its ``wait_for_playout`` hangs until its own timeout.

This receiver translates that to the port: ``SpeechIn``/``Flush`` carrying the segment
id, ``Interrupt``; the pipeline's :class:`Playback` reports come back as the two RPCs.

Why not livekit-agents' ``DataStreamAudioReceiver``: it keeps its ``lk.clear_buffer``
handlers in a class-level dict keyed only by the caller's identity and never removes
them, so in a worker running many rooms two agents with the same identity would
interrupt each other's sessions (and every session leaks a handler); a playback RPC
that fails three times, or one stream without attributes, tears the receiver down for
the rest of the session; and after a clear it may or may not yield the cleared
segment's end, so segments cannot be counted. It would also make the whole agents
framework a runtime dependency of the worker. The wire names are pinned to its
constants by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import numpy as np
from livekit import rtc

from protoface.worker.audio import Resampler, to_mono_int16
from protoface.worker.transports.port import (
    Flush,
    Inbound,
    Interrupt,
    Playback,
    Refused,
    SpeechIn,
)

log = logging.getLogger("protoface.worker.livekit")

AUDIO_STREAM_TOPIC = "lk.audio_stream"
RPC_CLEAR_BUFFER = "lk.clear_buffer"
RPC_PLAYBACK_STARTED = "lk.playback_started"
RPC_PLAYBACK_FINISHED = "lk.playback_finished"

# A segment whose trailer never arrives (lost in a reconnect) ends after this much
# quiet, as in the official receiver; audio is pushed faster than real time.
STREAM_IDLE_SECONDS = 10.0
SUPERSEDED_GRACE_SECONDS = 0.5
# Playback reports are retried briefly: the agent may be mid-reconnect.
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.5)
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8


class PerformRpc(Protocol):
    """``rtc.LocalParticipant.perform_rpc``."""

    async def __call__(self, *, destination_identity: str, method: str, payload: str) -> str: ...


class AvatarAudioReceiver:
    def __init__(self, emit: Callable[[Inbound], None], perform_rpc: PerformRpc,
                 *, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.sender: str | None = None  # the only participant we take speech from
        self._emit = emit
        self._rpc = perform_rpc
        self._retry_delays = retry_delays
        self._streams: asyncio.Queue[tuple[str, rtc.ByteStreamReader]] = asyncio.Queue()
        self._current: str | None = None  # the segment being read
        self._stop_reading = asyncio.Event()  # cleared, superseded or closing
        self._outbox: asyncio.Queue[Playback] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._read_streams()),
                       asyncio.create_task(self._send_reports())]

    # ── From the room (registered by the adapter) ───────────────────────────────

    def on_stream(self, reader: rtc.ByteStreamReader, participant_identity: str) -> None:
        if participant_identity != self.sender:
            reader.close()  # not the agent we listen to (closing frees the SDK's subscription)
            return
        if self._current is not None:
            # The sender never overlaps segments: a new one while one is open means
            # that one's trailer was lost. End it instead of waiting forever.
            self._stop_reading.set()
        self._streams.put_nowait((reader.info.stream_id, reader))

    def on_clear_buffer(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.sender:
            return "reject"  # as the official receiver answers strangers
        if self._current is not None:
            self._current = None  # the rest of this stream is discarded, at once
            self._stop_reading.set()
        self._drop_waiting_streams()
        self._emit(Interrupt())
        return "ok"

    # ── From the pipeline ───────────────────────────────────────────────────────

    def report(self, event: Playback) -> None:
        self._outbox.put_nowait(event)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Deliver the reports still queued (bounded), then stop."""
        self._current = None
        self._stop_reading.set()
        self._drop_waiting_streams()
        if self.sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ── Segments in ─────────────────────────────────────────────────────────────

    def _drop_waiting_streams(self) -> None:
        """Segments that arrived but were not started never play; the agent counted
        them, so each still gets its (interrupted) finish."""
        while not self._streams.empty():
            segment, reader = self._streams.get_nowait()
            reader.close()
            self.report(Playback(segment, finished=True, interrupted=True))

    async def _read_streams(self) -> None:
        while True:
            segment, reader = await self._streams.get()
            try:
                await self._read(segment, reader)
            finally:
                reader.close()

    async def _read(self, segment: str, reader: rtc.ByteStreamReader) -> None:
        attributes = reader.info.attributes or {}
        try:
            rate, channels = int(attributes["sample_rate"]), int(attributes["num_channels"])
        except (KeyError, ValueError):
            rate = channels = 0
        if not (1000 <= rate <= MAX_SAMPLE_RATE and 1 <= channels <= MAX_CHANNELS):
            log.warning("audio stream without a usable format",
                        extra={"segment": segment, "attributes": attributes})
            self._emit(Refused("invalid_audio_stream",
                                f"{AUDIO_STREAM_TOPIC} needs sample_rate and num_channels"))
            self.report(Playback(segment, finished=True))  # the agent still counts it
            return
        resample = Resampler(rate)  # one per segment: no phase carried across segments
        self._current = segment
        if self._streams.empty():
            self._stop_reading.clear()
        else:  # a newer segment is already waiting: this one's trailer is not coming
            self._stop_reading.set()
        # Registers the segment with the pipeline before any audio, so a clear that
        # comes first still finishes it (interrupted, at 0 s).
        self._emit(SpeechIn(np.zeros(0, np.int16), segment))
        frame = 2 * channels
        pending = b""  # chunks need not end on a sample boundary
        try:
            async for chunk in self._chunks(reader, segment):
                if self._current != segment:
                    return
                data = pending + chunk
                cut = len(data) - len(data) % frame
                pending = data[cut:]
                self._emit(SpeechIn(resample(to_mono_int16(data[:cut], channels)), segment))
        except rtc.StreamError as exc:
            log.warning("audio stream aborted", extra={"segment": segment, "error": str(exc)})
        if self._current == segment:  # not cleared: every sample is queued
            self._current = None
            self._emit(Flush(segment))

    async def _chunks(self, reader: rtc.ByteStreamReader, segment: str) -> AsyncIterator[bytes]:
        """The reader's chunks until its trailer, a clear, or idleness. A chunk already
        queued always wins; a segment superseded by a newer one (its trailer was lost)
        still takes what arrives within ``SUPERSEDED_GRACE_SECONDS`` of each chunk."""
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop_reading.wait())
        try:
            while True:
                # Any: the wait mixes a chunk (bytes) with the stop flag (True).
                chunk: asyncio.Future[Any] = asyncio.ensure_future(anext(reader))
                if stop.done():
                    done, _ = await asyncio.wait({chunk}, timeout=SUPERSEDED_GRACE_SECONDS)
                else:
                    done, _ = await asyncio.wait({chunk, stop}, timeout=STREAM_IDLE_SECONDS,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if chunk not in done and stop in done and self._current == segment:
                        done, _ = await asyncio.wait({chunk}, timeout=SUPERSEDED_GRACE_SECONDS)
                if chunk not in done:
                    chunk.cancel()  # cleared, closing, superseded or idle
                    return
                try:
                    yield chunk.result()
                except StopAsyncIteration:
                    return
        finally:
            stop.cancel()

    # ── Reports out ─────────────────────────────────────────────────────────────

    async def _send_reports(self) -> None:
        while True:
            event = await self._outbox.get()
            try:
                await self._deliver(event)
            finally:
                self._outbox.task_done()

    async def _deliver(self, event: Playback) -> None:
        if event.finished:
            method = RPC_PLAYBACK_FINISHED
            payload = json.dumps({"playback_position": round(event.position, 6),
                                  "interrupted": event.interrupted})
        else:
            method, payload = RPC_PLAYBACK_STARTED, ""
        for delay in (*self._retry_delays, None):
            if self.sender is None:
                return  # the agent left: nobody to tell
            try:
                await self._rpc(destination_identity=self.sender, method=method, payload=payload)
                return
            except Exception as exc:
                if (isinstance(exc, rtc.RpcError) and method == RPC_PLAYBACK_STARTED
                        and exc.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD):
                    return  # the agent did not ask for starts (wait_playback_start=False)
                if delay is None:
                    log.error("playback report not delivered",
                              extra={"method": method, "segment": event.segment,
                                     "error": str(exc)})
                    return
            await asyncio.sleep(delay)
