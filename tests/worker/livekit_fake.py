"""A LiveKit server — and the agent in the room — at the livekit SDK's FFI boundary.

No LiveKit server can run here. Everything above the SDK's native layer is real:
``rtc.Room``, ``LocalParticipant``, ``ByteStreamReader``, ``RpcInvocationData``, the
SDK's own event dispatch. Only ``FfiClient.instance.request`` is intercepted for the
requests a server would answer (connect, publish, RPC, disconnect…); the answers and
room events go back through ``FfiClient.instance.queue``, exactly as the native layer
delivers them. Media requests (audio/video sources, tracks) still go to the real
native library.

The agent side is livekit-agents' own ``DataStreamAudioOutput`` (what the Protoface
plugin installs) on :class:`AgentRoom`, the small slice of ``rtc.Room`` it uses, whose
byte streams and RPCs this fake routes to and from the worker's room.

Every native handle the fake hands out is 0 (the SDK's "invalid handle"), so the SDK
never tries to free handles the native layer has never seen.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import data_stream_pb2 as ds
from livekit.rtc._proto import ffi_pb2 as ffi
from livekit.rtc._proto import participant_pb2 as pp
from livekit.rtc._proto import room_pb2 as rp
from livekit.rtc._proto import rpc_pb2 as rpc
from livekit.rtc._proto import track_pb2 as tp

NO_HANDLE = 0
CHUNK_BYTES = 1001  # odd on purpose: chunks need not end on a sample boundary


def participant_info(identity: str, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
                     attributes: dict[str, str] | None = None) -> pp.OwnedParticipant:
    owned = pp.OwnedParticipant()
    owned.handle.id = NO_HANDLE
    owned.info.identity = identity
    owned.info.sid = f"PA_{identity}"
    owned.info.kind = kind
    owned.info.state = pp.PARTICIPANT_STATE_ACTIVE
    owned.info.attributes.update(attributes or {})
    return owned


def remote_participant(identity: str, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
                       attributes: dict[str, str] | None = None) -> rtc.RemoteParticipant:
    return rtc.RemoteParticipant(participant_info(identity, kind, attributes))


def publication_info(sid: str, kind: int, source: int) -> tp.OwnedTrackPublication:
    owned = tp.OwnedTrackPublication()
    owned.handle.id = NO_HANDLE
    owned.info.sid, owned.info.name = sid, sid
    owned.info.kind, owned.info.source = kind, source  # type: ignore[assignment]
    return owned


def deliver(event: ffi.FfiEvent) -> None:
    FfiClient.instance.queue.put(event)


def room_event(**fields: Any) -> ffi.FfiEvent:
    return ffi.FfiEvent(room_event=rp.RoomEvent(room_handle=NO_HANDLE, **fields))


class FakeLiveKit:
    def __init__(self, worker_identity: str = "protoface-avatar-agent", *,
                 connect_error: str | None = None) -> None:
        self.worker_identity = worker_identity
        self.connect_error = connect_error
        self.present: list[pp.OwnedParticipant] = []  # in the room before we join
        self.present_tracks: dict[str, list[tp.OwnedTrackPublication]] = {}
        self.published: list[int] = []  # TrackSource of each publish, in order
        self.subscribed = 0  # set_subscribed(True) requests
        self.disconnected = False
        self.rpc_failures = 0  # the next N RPCs from the worker fail (agent mid-reconnect)
        self.worker_rpcs: list[tuple[str, str, str]] = []  # (destination, method, payload)
        self.agents: dict[str, AgentRoom] = {}
        self._real = FfiClient.instance.request
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future[tuple[str, rtc.RpcError | None]]] = {}
        self._held: dict[int, list[ffi.FfiEvent]] = {}
        self._reading: set[int] = set()

    def __enter__(self) -> FakeLiveKit:
        FfiClient.instance.request = self._request  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        FfiClient.instance.request = self._real  # type: ignore[method-assign]

    # ── What happens in the room ────────────────────────────────────────────────

    def agent(self, identity: str = "agent-AJ_1") -> AgentRoom:
        """The agent's side of the room, with the worker already visible to it."""
        room = AgentRoom(self, identity)
        self.agents[identity] = room
        return room

    def join(self, identity: str, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
             attributes: dict[str, str] | None = None) -> None:
        deliver(room_event(participant_connected=rp.ParticipantConnected(
            info=participant_info(identity, kind, attributes))))

    def leave(self, identity: str) -> None:
        deliver(room_event(participant_disconnected=rp.ParticipantDisconnected(
            participant_identity=identity,
            disconnect_reason=rtc.DisconnectReason.CLIENT_INITIATED)))

    def remove_worker(self, reason: int = rtc.DisconnectReason.PARTICIPANT_REMOVED) -> None:
        deliver(room_event(disconnected=rp.Disconnected(reason=reason)))  # type: ignore[arg-type]

    def publish_audio(self, identity: str, sid: str = "TR_agent_audio") -> None:
        deliver(room_event(track_published=rp.TrackPublished(
            participant_identity=identity, publication=publication_info(
                sid, rtc.TrackKind.KIND_AUDIO, rtc.TrackSource.SOURCE_MICROPHONE))))

    # ── The server's answers ────────────────────────────────────────────────────

    def _request(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        handler = getattr(self, "_on_" + str(req.WhichOneof("message")), None)
        if handler is None:
            return self._real(req)  # media: the real native layer
        response: ffi.FfiResponse = handler(req)
        return response

    def _on_connect(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        async_id = next(self._ids)
        callback = rp.ConnectCallback(async_id=async_id)
        if self.connect_error is not None:
            callback.error = self.connect_error
        else:
            result = callback.result
            result.room.handle.id = NO_HANDLE
            result.room.info.sid, result.room.info.name = "RM_fake", "demo-room"
            result.local_participant.CopyFrom(participant_info(self.worker_identity))
            for owned in self.present:
                entry = result.participants.add()
                entry.participant.CopyFrom(owned)
                entry.publications.extend(self.present_tracks.get(owned.info.identity, []))
        deliver(ffi.FfiEvent(connect=callback))
        return ffi.FfiResponse(connect=rp.ConnectResponse(async_id=async_id))

    def _on_ready_for_room_event(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        return ffi.FfiResponse()

    def _on_publish_track(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        async_id = next(self._ids)
        source = req.publish_track.options.source
        self.published.append(source)
        kind = (rtc.TrackKind.KIND_VIDEO if source == rtc.TrackSource.SOURCE_CAMERA
                else rtc.TrackKind.KIND_AUDIO)
        publication = publication_info(f"TR_{async_id}", kind, source)
        deliver(ffi.FfiEvent(publish_track=rp.PublishTrackCallback(
            async_id=async_id, publication=publication)))
        for agent in self.agents.values():
            agent.worker_published(publication)
        return ffi.FfiResponse(publish_track=rp.PublishTrackResponse(async_id=async_id))

    def _on_set_subscribed(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        self.subscribed += int(req.set_subscribed.subscribe)
        return ffi.FfiResponse()

    def _on_register_rpc_method(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        return ffi.FfiResponse()

    def _on_byte_read_incremental(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        # Like the native layer, hold a stream's chunks until its reader asks for them.
        handle = req.byte_read_incremental.reader_handle
        for event in self._held.pop(handle, []):
            deliver(event)
        self._reading.add(handle)
        return ffi.FfiResponse()

    def _on_rpc_method_invocation_response(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        answer = req.rpc_method_invocation_response
        error = (rtc.RpcError._from_proto(answer.error) if answer.HasField("error") else None)
        future = self._answers.pop(answer.invocation_id)
        future.set_result((answer.payload, error))
        return ffi.FfiResponse()

    def _on_perform_rpc(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        async_id = next(self._ids)
        call = req.perform_rpc
        self.worker_rpcs.append((call.destination_identity, call.method, call.payload))
        asyncio.get_running_loop().create_task(self._answer_worker_rpc(async_id, call))
        return ffi.FfiResponse(perform_rpc=rpc.PerformRpcResponse(async_id=async_id))

    async def _answer_worker_rpc(self, async_id: int, call: Any) -> None:
        callback = rpc.PerformRpcCallback(async_id=async_id)
        agent = self.agents.get(call.destination_identity)
        handler = agent.local_participant._rpc_handlers.get(call.method) if agent else None
        if self.rpc_failures:
            self.rpc_failures -= 1
            error = rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED, "reconnecting")
            callback.error.CopyFrom(error._to_proto())
        elif agent is None:
            callback.error.CopyFrom(rtc.RpcError._built_in(
                rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND)._to_proto())
        elif handler is None:
            callback.error.CopyFrom(rtc.RpcError._built_in(
                rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD)._to_proto())
        else:
            answer = handler(rtc.RpcInvocationData(
                f"req-{async_id}", self.worker_identity, call.payload, 10.0, method=call.method))
            if inspect.isawaitable(answer):
                answer = await answer
            callback.payload = answer or ""
        deliver(ffi.FfiEvent(perform_rpc=callback))

    def _on_disconnect(self, req: ffi.FfiRequest) -> ffi.FfiResponse:
        async_id = next(self._ids)
        self.disconnected = True
        deliver(ffi.FfiEvent(disconnect=rp.DisconnectCallback(async_id=async_id)))
        deliver(room_event(eos=rp.RoomEOS()))
        return ffi.FfiResponse(disconnect=rp.DisconnectResponse(async_id=async_id))

    # ── Routing the agent's calls to the worker's room ──────────────────────────

    async def call_worker(self, caller: str, method: str, payload: str) -> str:
        invocation = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._answers[invocation] = future
        deliver(ffi.FfiEvent(rpc_method_invocation=rpc.RpcMethodInvocationEvent(
            local_participant_handle=NO_HANDLE, invocation_id=invocation, method=method,
            request_id=f"req-{invocation}", caller_identity=caller, payload=payload,
            response_timeout_ms=10_000)))
        payload_back, error = await future
        if error is not None:
            raise error
        return payload_back

    def open_stream(self, sender: str, *, topic: str, attributes: dict[str, str]) -> int:
        """The agent starts a byte stream: the worker's room hears its header."""
        owned = self.owned_reader(topic, attributes)
        deliver(room_event(byte_stream_opened=rp.ByteStreamOpened(
            reader=owned, participant_identity=sender)))
        return owned.handle.id

    def reader(self, attributes: dict[str, str],
               topic: str = "lk.audio_stream") -> tuple[rtc.ByteStreamReader, int]:
        """A real reader, as the room hands one to a byte stream handler."""
        owned = self.owned_reader(topic, attributes)
        return rtc.ByteStreamReader(owned), owned.handle.id

    def owned_reader(self, topic: str, attributes: dict[str, str]) -> ds.OwnedByteStreamReader:
        handle = 10_000 + next(self._ids)  # reader ids are plain ints, never freed by the SDK
        reader = ds.OwnedByteStreamReader()
        reader.handle.id = handle
        reader.info.stream_id = f"STREAM_{handle}"
        reader.info.topic = topic
        reader.info.mime_type = "application/octet-stream"
        reader.info.name = f"AUDIO_{handle}"
        reader.info.attributes.update(attributes)
        return reader

    def stream_chunk(self, handle: int, data: bytes) -> None:
        for start in range(0, len(data), CHUNK_BYTES):
            event = ffi.FfiEvent()
            event.byte_stream_reader_event.reader_handle = handle
            event.byte_stream_reader_event.chunk_received.content = data[start:start + CHUNK_BYTES]
            self._to_reader(handle, event)

    def stream_end(self, handle: int, error: str | None = None) -> None:
        event = ffi.FfiEvent()
        event.byte_stream_reader_event.reader_handle = handle
        event.byte_stream_reader_event.eos.SetInParent()
        if error is not None:
            event.byte_stream_reader_event.eos.error.description = error
        self._to_reader(handle, event)

    def _to_reader(self, handle: int, event: ffi.FfiEvent) -> None:
        if handle in self._reading:
            deliver(event)
        else:
            self._held.setdefault(handle, []).append(event)


class AgentRoom(rtc.EventEmitter[str]):
    """The part of ``rtc.Room`` that ``DataStreamAudioOutput`` uses, for the agent."""

    def __init__(self, fake: FakeLiveKit, identity: str) -> None:
        super().__init__()
        self.name = "demo-room"
        self.local_participant = AgentParticipant(fake, identity)
        worker = remote_participant(fake.worker_identity)
        self.remote_participants: dict[str, rtc.RemoteParticipant] = {worker.identity: worker}

    def isconnected(self) -> bool:
        return True

    def worker_published(self, owned: tp.OwnedTrackPublication) -> None:
        worker = next(iter(self.remote_participants.values()))
        publication = rtc.RemoteTrackPublication(owned)
        worker._track_publications[publication.sid] = publication
        self.emit("track_published", publication, worker)


class AgentParticipant:
    def __init__(self, fake: FakeLiveKit, identity: str) -> None:
        self.identity = identity
        self._fake = fake
        self._rpc_handlers: dict[str, Callable[[rtc.RpcInvocationData], Any]] = {}

    def register_rpc_method(self, method: str, handler: Callable[..., Any]) -> None:
        self._rpc_handlers[method] = handler

    async def perform_rpc(self, *, destination_identity: str, method: str, payload: str,
                          response_timeout: float | None = None) -> str:
        return await self._fake.call_worker(self.identity, method, payload)

    async def stream_bytes(self, name: str, *, topic: str = "",
                           attributes: dict[str, str] | None = None,
                           destination_identities: list[str] | None = None,
                           **_: Any) -> AgentStreamWriter:
        handle = self._fake.open_stream(self.identity, topic=topic, attributes=attributes or {})
        return AgentStreamWriter(self._fake, handle)


class AgentStreamWriter:
    def __init__(self, fake: FakeLiveKit, handle: int) -> None:
        self._fake = fake
        self.handle = handle

    async def write(self, data: bytes) -> None:
        self._fake.stream_chunk(self.handle, data)

    async def aclose(self) -> None:
        self._fake.stream_end(self.handle)
