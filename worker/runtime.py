"""A worker process: sessions fed by the shared queue of queued sessions, as many as
its capacity fits (cost units, ``domain.capacity``) and at most ``slots``.

At start the worker measures what a session of each tier costs it (``worker.capacity``;
or takes the operator's ``--capacity`` figure). Claiming is an append that only one
worker can win (conditional on the session's version), and a worker claims only a
session whose tier fits in its free room, nor any while its frames run late. It
announces its capacity, free room per tier and free slots in the registry every
heartbeat and on every change; on SIGTERM it stops claiming and ends its sessions
gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protoface.domain import capacity as cost
from protoface.domain import ids, session
from protoface.domain.avatar import STOCK_AVATARS
from protoface.domain.errors import Rejected
from protoface.domain.sealing import Keyring
from protoface.domain.session import LiveKitTransport, PipecatTransport, Session
from protoface.domain.tiers import TIERS
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog, LogUnavailable
from protoface.streams.transact import Stream, from_log, transact
from protoface.streams.work import WorkerInfo, WorkerRegistry, WorkQueue
from protoface.worker import metrics
from protoface.worker.avatars import AvatarNotAvailable, load_asset, renderer_for
from protoface.worker.builds import Builder
from protoface.worker.capacity.overload import Overload
from protoface.worker.capacity.probe import probe
from protoface.worker.pipeline import Renderer
from protoface.worker.session_runner import RunnerSettings, SessionRunner
from protoface.worker.transports.livekit.transport import LiveKitTransportAdapter
from protoface.worker.transports.port import Transport
from protoface.worker.transports.relay.transport import RelayTransport

log = logging.getLogger("protoface.worker")

RETRY_SECONDS = 0.25  # between announcements the registry did not take


@dataclass(frozen=True)
class WorkerSettings:
    # An upper bound on sessions; what fits is decided by cost (``capacity``).
    slots: int = 64
    # Sessions of a tier that fill this worker, as the operator pins them (``--capacity
    # lite=24,…``); tiers not named are measured by the probe at start.
    pinned: dict[str, int] = field(default_factory=dict)
    probe_seconds: float = 2.0
    heartbeat_seconds: float = 5.0
    drain_seconds: float = 2.0
    shutdown_seconds: float = 10.0
    worker_id: str = field(default_factory=lambda: ids.new_id(ids.WORKER))


class Worker:
    def __init__(self, event_log: EventLog, keyring: Keyring, settings: WorkerSettings) -> None:
        self.log = event_log
        self.keyring = keyring
        self.settings = settings
        self.runners: dict[str, SessionRunner] = {}
        self.draining = False
        self._slot_freed = asyncio.Event()
        self._registry: WorkerRegistry | None = None
        self._avatars: AvatarStore | None = None
        self.capacity = cost.CAPACITY_UNITS
        self.costs: dict[str, float] = {}  # tier → units a session; measured in run()
        self._tiers: dict[str, str] = {}  # running session → its tier
        self.overload = Overload()
        self._announced_overload: str | None = None

    @property
    def worker_id(self) -> str:
        return self.settings.worker_id

    @property
    def free(self) -> int:
        return 0 if self.draining else max(0, self.settings.slots - len(self.runners))

    @property
    def used(self) -> float:
        return round(sum(self.costs.get(t, 0.0) for t in self._tiers.values()), 2)

    def room(self) -> dict[str, int]:
        """Sessions of each tier this worker would still claim now."""
        overloaded = self.overload.check(self.worker_id)
        if overloaded != self._announced_overload and self._registry is not None:
            # Overloaded or recovered: the APIs hear it now, not at the next heartbeat.
            self._announced_overload = overloaded
            asyncio.get_running_loop().create_task(self._announce())
        if self.draining or overloaded is not None:
            return dict.fromkeys(self.costs, 0)
        return cost.room(self.costs, self.capacity, self.used, self.free)

    async def measure(self) -> None:
        """Each tier's cost: the operator's pinned figure, else the probe's (off the loop)."""
        pinned = cost.pinned_costs(self.capacity, self.settings.pinned)
        unpinned = [t for t in TIERS if t not in pinned]
        probed = await asyncio.to_thread(probe, unpinned, self.settings.probe_seconds)
        self.costs = {**probed, **pinned}

    async def run(self, shutdown: asyncio.Event) -> None:
        await self.measure()
        self._registry = await WorkerRegistry.open(self.log)
        queue = await WorkQueue.open(self.log)
        self._avatars = await AvatarStore.open(self.log)
        warming = asyncio.create_task(self._warm_stock_assets(self._avatars))
        # Avatar builds run beside the sessions, from their own durable queue.
        builder = asyncio.create_task(
            Builder(self.log, self._avatars, self.worker_id).run(shutdown))
        announcer = asyncio.create_task(self._announce_forever())
        log.info("worker started", extra={
            "worker_id": self.worker_id, "slots": self.settings.slots,
            "capacity": self.capacity, "costs": self.costs, "room": self.room()})
        try:
            await self._claim_loop(queue, shutdown)
        finally:
            await self._drain()
            announcer.cancel()
            builder.cancel()
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await builder
            await queue.close()
            with contextlib.suppress(Exception):
                await self._registry.leave(self.worker_id)
            log.info("worker stopped", extra={"worker_id": self.worker_id})

    async def _claim_loop(self, queue: WorkQueue, shutdown: asyncio.Event) -> None:
        while not shutdown.is_set():
            if not any(self.room().values()):
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 0.5)
                continue
            try:
                work = await queue.next(timeout=0.5)
            except LogUnavailable:
                await asyncio.sleep(0.5)
                continue
            if work is None:
                continue
            if shutdown.is_set():
                await work.later()
                return
            event = work.event
            if isinstance(event, session.SessionQueued):
                try:
                    if not await self._claim(event.session_id):
                        await work.later()  # a worker with room takes it (or we, later)
                        continue
                except LogUnavailable:
                    await work.later()  # someone (maybe us) tries again shortly
                    continue
                except Exception:
                    log.exception("claim failed", extra={"session_id": event.session_id})
                    await work.later()
                    continue
            await work.done()

    async def _claim(self, session_id: str) -> bool:
        """Claim the session if it is still queued; ``False`` if it does not fit here."""
        log.debug("queued work received", extra={"session_id": session_id})
        stream = Stream.session(session_id)
        load = from_log(self.log, stream, session.fold)
        state, _ = await load()
        if state is None or state.status != "queued":
            # Already claimed, canceled or failed: nothing to do.
            log.info("queued work skipped", extra={
                "session_id": session_id, "status": state.status if state else None})
            return True
        if self.room().get(state.quality, 0) < 1:
            # Admitted by an API that counted room another API's create took meanwhile.
            log.info("queued work does not fit", extra={
                "session_id": session_id, "quality": state.quality, "room": self.room()})
            return False
        # The avatar's asset is loaded before the claim: once the claim is stored the
        # runner must start listening at once (an end can follow within milliseconds).
        renderer = await self._renderer_factory(state)
        command = session.Claim(session_id=session_id, now=datetime.now(UTC),
                                worker_id=self.worker_id)
        try:
            # Another worker's claim (or an end) meanwhile: re-decided, refused.
            done = await transact(self.log, stream, load,
                                  lambda latest: session.decide(command, latest,
                                                                ids.new_event_id))
        except Rejected:
            return True
        if not done.stored:
            return True
        state = session.fold(list(done.events), done.state)
        assert state is not None
        seq = done.version
        runner = SessionRunner(
            self.log, state, seq, transport=self._transport(state), renderer=renderer,
            settings=RunnerSettings(heartbeat_seconds=self.settings.heartbeat_seconds,
                                    drain_seconds=self.settings.drain_seconds),
        )
        self.runners[session_id] = runner
        self._tiers[session_id] = state.quality
        log.info("session claimed", extra={"session_id": session_id, "worker_id": self.worker_id})
        task = asyncio.create_task(runner.run())
        task.add_done_callback(lambda _t: self._release(session_id))
        await self._announce()
        return True

    async def _warm_stock_assets(self, store: AvatarStore) -> None:
        """Build the stock avatars' assets now, so the first claim does not wait for it."""
        for avatar_id in STOCK_AVATARS:
            try:
                await load_asset(self.log, store, avatar_id)
            except Exception:
                log.warning("stock avatar unavailable on this worker",
                            extra={"avatar_id": avatar_id})

    async def _renderer_factory(self, state: Session) -> Callable[[Session], Renderer]:
        """The session's renderer factory, its avatar's asset loaded. A load that fails
        fails the session (``avatar_load_failed``) when the runner makes the renderer."""
        assert self._avatars is not None
        try:
            asset = await load_asset(self.log, self._avatars, state.avatar_id)
        except Exception as exc:
            log.warning("avatar load failed", extra={"session_id": state.id,
                                                     "avatar_id": state.avatar_id})
            error = exc

            def unavailable(_state: Session) -> Renderer:
                raise AvatarNotAvailable(str(error))

            return unavailable
        return lambda s: renderer_for(s, asset)

    def _transport(self, state: Session) -> Transport:
        if isinstance(state.transport, PipecatTransport):
            return RelayTransport(
                self.log, state.id, state.transport.audio_sample_rate,
                encoding=state.transport.video_encoding,
                jpeg_quality=TIERS[state.quality].jpeg_quality,
            )
        assert isinstance(state.transport, LiveKitTransport)
        token = self.keyring.open(state.transport.worker_token_sealed, state.id)
        return LiveKitTransportAdapter(state.transport, token)

    def _release(self, session_id: str) -> None:
        self.runners.pop(session_id, None)
        self._tiers.pop(session_id, None)
        self._slot_freed.set()
        asyncio.get_event_loop().create_task(self._announce())

    async def _drain(self) -> None:
        """Stop claiming; end every session gracefully (reason ``shutdown``), bounded."""
        self.draining = True
        await self._announce()
        for runner in list(self.runners.values()):
            runner.request_stop("shutdown")
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_seconds
        while self.runners and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def _announce(self) -> bool:
        """Tell the registry how this worker stands; whether the registry heard it."""
        room = self.room()
        metrics.SLOTS_FREE.set(self.free)
        metrics.CAPACITY_UNITS.set(self.capacity)
        metrics.USED_UNITS.set(self.used)
        for tier, n in room.items():
            metrics.ROOM.labels(tier).set(n)
        if self._registry is None:
            return False
        try:
            await self._registry.announce(WorkerInfo(
                worker_id=self.worker_id, slots=self.settings.slots, free=self.free,
                sessions=tuple(self.runners), draining=self.draining,
                capacity=self.capacity, used=self.used, costs=self.costs, room=room,
                overloaded=self.overload.reason,
            ))
        except Exception:
            return False
        return True

    async def _announce_forever(self) -> None:
        while True:
            heard = await self._announce()
            # Unheard (the server restarting, its in-memory registry gone): again soon,
            # so the API counts this worker within moments of the server answering.
            await asyncio.sleep(self.settings.heartbeat_seconds if heard else RETRY_SECONDS)
