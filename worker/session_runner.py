"""Runs one claimed session: join the transport, run the pipeline, report the lifecycle.

Every lifecycle step is a decision of the Session aggregate appended to the log
(``first_frame``, ``heartbeat``, ``ending``, ``ended`` or ``failed``); the runner
holds the state it last appended and re-reads the log if someone else (the API
ending it, the supervisor failing it) appended first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from protoface.domain import ids, session
from protoface.domain.errors import Rejected
from protoface.domain.events import Event
from protoface.domain.session import Session
from protoface.domain.tiers import TIERS
from protoface.streams.eventlog import EventLog
from protoface.streams.transact import Stream, from_log, transact
from protoface.streams.work import session_signals
from protoface.worker import metrics
from protoface.worker.pipeline import Pipeline, Renderer
from protoface.worker.transports.port import Transport, TransportError

log = logging.getLogger("protoface.worker")


@dataclass(frozen=True)
class RunnerSettings:
    heartbeat_seconds: float = 5.0
    drain_seconds: float = 2.0
    connect_timeout: float = 35.0


class SessionRunner:
    def __init__(
        self, event_log: EventLog, state: Session, version: int, *,
        transport: Transport, renderer: Callable[[Session], Renderer],
        settings: RunnerSettings,
    ) -> None:
        self.log = event_log
        self.state = state
        self.version = version
        self.transport = transport
        self.make_renderer = renderer
        self.settings = settings
        self.stop = asyncio.Event()
        self.reason: session.EndReason | None = None
        self._lock = asyncio.Lock()
        self._claimed_at = time.monotonic()

    @property
    def session_id(self) -> str:
        return self.state.id

    def request_stop(self, reason: session.EndReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.stop.set()

    # ── The whole life of the session ───────────────────────────────────────────

    async def run(self) -> None:
        extra = {"session_id": self.session_id}
        try:
            await self._run()
        except Exception as exc:
            log.exception("session failed", extra=extra)
            await self._transact_quietly(session.Fail(
                session_id=self.session_id, now=_now(), code=session.INTERNAL,
                message=f"Internal worker error ({type(exc).__name__}).",
            ))
        finally:
            with contextlib.suppress(Exception):
                await self.transport.close()

    async def _run(self) -> None:
        # Listen first: an end requested while the client has not connected yet
        # must stop the wait for it.
        unsubscribe = await session_signals(self.log, self.session_id, self._on_signal)
        try:
            await self._connected_run()
        finally:
            await unsubscribe()

    async def _connected_run(self) -> None:
        try:
            connected = await self._connect()
        except (TransportError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, TransportError) else session.TRANSPORT_CONNECT_FAILED
            await self._fail(code, getattr(exc, "message", "") or "Transport connection timed out.")
            return
        if not connected:  # told to stop (ended, shutdown) while still connecting
            await self._transact(session.Finish(
                session_id=self.session_id, now=_now(), reason=self.reason or "requested"))
            return
        try:
            renderer = self.make_renderer(self.state)
        except Exception as exc:
            await self._fail(session.AVATAR_LOAD_FAILED, f"Avatar could not be loaded: {exc}")
            return
        tier = TIERS[self.state.quality]
        pipeline = Pipeline(self.transport, renderer, tier, session_id=self.session_id)
        await self.transport.ready({
            "session_id": self.session_id, "width": renderer.width,
            "height": renderer.height, "fps": tier.fps, "sample_rate": 16_000,
        })
        await self._live(pipeline)

    async def _live(self, pipeline: Pipeline) -> None:
        tasks = [
            asyncio.create_task(pipeline.pump_inbound()),
            asyncio.create_task(pipeline.run_output(self.stop, self.settings.drain_seconds)),
            asyncio.create_task(self._first_frame(pipeline)),
            asyncio.create_task(self._heartbeats(pipeline)),
            asyncio.create_task(self._watch(pipeline)),
        ]
        output = tasks[1]
        try:
            await output  # returns once stopped and drained
        finally:
            for task in tasks:
                if task is not output:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.state.terminal:
            return  # failed or finished elsewhere (e.g. the supervisor)
        await self._transact(session.Finish(
            session_id=self.session_id, now=_now(), reason=self.reason or "completed",
            frames=pipeline.frames, billable_seconds=pipeline.billable_seconds(),
        ))
        log.info("session ended", extra={"session_id": self.session_id, "reason": self.reason,
                                         "frames": pipeline.frames})

    async def _connect(self) -> bool:
        """Connect, unless the session is stopped first (a client may never come)."""
        connecting = asyncio.create_task(
            asyncio.wait_for(self.transport.connect(), self.settings.connect_timeout))
        stopped = asyncio.create_task(self.stop.wait())
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if connecting.done():
            connecting.result()  # raises the transport's failure
            return True
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, TransportError, TimeoutError):
            await connecting
        return False

    async def _first_frame(self, pipeline: Pipeline) -> None:
        await pipeline.first_frame.wait()
        await self._transact(session.ReportFirstFrame(session_id=self.session_id, now=_now()))
        metrics.FIRST_FRAME_SECONDS.observe(
            (_now() - self.state.created_at).total_seconds()
        )

    async def _heartbeats(self, pipeline: Pipeline) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            if pipeline.first_frame_at is None:
                continue
            with contextlib.suppress(Rejected):
                await self._transact(session.ReportUsage(
                    session_id=self.session_id, now=_now(), frames=pipeline.frames,
                    billable_seconds=pipeline.billable_seconds(),
                ))

    async def _watch(self, pipeline: Pipeline) -> None:
        """Decide when the session must end: limits, idleness, the client leaving."""
        max_end = self._claimed_at + self.state.max_duration_seconds
        idle = self.state.idle_timeout_seconds
        while not self.stop.is_set():
            now = time.monotonic()
            reason: session.EndReason | None = None
            if pipeline.closed.is_set():
                reason = end_reason_of(pipeline.closed_reason)
            elif now >= max_end:
                reason = "max_duration"
            elif self.transport.observes_audio and now - pipeline.speech.last_input >= idle:
                reason = "idle_timeout"
            if reason is not None:
                await self._transact(session.RequestEnd(
                    session_id=self.session_id, now=_now(), reason=reason))
                self.request_stop(reason)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pipeline.closed.wait(), 0.1)

    async def _on_signal(self, event: Event) -> None:
        """Someone else changed the session (the API ending it, the supervisor failing it)."""
        if isinstance(event, session.SessionEnding):
            self.request_stop(event.reason)
        elif isinstance(event, session.SessionFailed | session.SessionCanceled):
            self.request_stop("requested")

    # ── Deciding and appending ──────────────────────────────────────────────────

    async def _fail(self, code: str, message: str) -> None:
        log.warning("session failed", extra={"session_id": self.session_id, "code": code})
        with contextlib.suppress(Exception):
            await self.transport.error(code, message)
        await self._transact(session.Fail(
            session_id=self.session_id, now=_now(), code=code, message=message))

    async def _transact_quietly(self, command: session.Command) -> None:
        with contextlib.suppress(Exception):
            await self._transact(command)

    async def _transact(self, command: session.Command) -> None:
        async def load() -> tuple[Session, int]:
            return self.state, self.version

        async with self._lock:
            # On a conflict the state is reloaded from the log (``_reload``), then re-decided.
            done = await transact(self.log, Stream.session(self.session_id), load,
                                  lambda state: session.decide(command, state, ids.new_event_id),
                                  lambda _version: self._reload())
            if done.stored:
                self.state = session.fold(list(done.events), self.state)  # type: ignore[assignment]
                self.version = done.version

    async def _reload(self) -> None:
        state, version = await from_log(self.log, Stream.session(self.session_id), session.fold)()
        if state is not None:
            self.state, self.version = state, version
            if state.status == "ending" and state.end_reason:
                self.request_stop(state.end_reason)
            elif state.terminal:
                self.request_stop(self.reason or "requested")


def end_reason_of(closed: str | None) -> session.EndReason:
    """The transport's own reason for closing (LiveKit: ``participant_left``), if it is one."""
    if closed in get_args(session.EndReason):
        return closed  # type: ignore[return-value]
    return "client_disconnected"


def _now() -> datetime:
    return datetime.now(UTC)
