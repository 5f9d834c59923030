"""The avatar build job: turn an uploaded portrait into the asset sessions render from.

Workers share the durable ``avatar.created`` queue (``streams.avatars.BuildQueue``).
For each job: fold the avatar's history; if it is still ``processing``, read the
source image from the object store, run ``worker.rig.build_asset`` in a thread (it
is CPU-bound; the event loop paces live video), store the asset and append
``avatar.built`` (or ``avatar.failed`` with the rig's human reason) conditionally
on the avatar's version. A redelivered job for an avatar that is already built,
failed or deleted does nothing; a build that loses to a delete purges its asset.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime

from protoface.domain import avatar, ids
from protoface.domain.avatar import AvatarCreated
from protoface.domain.errors import Rejected
from protoface.streams import subjects
from protoface.streams.avatars import AvatarStore, BuildQueue
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, LogUnavailable
from protoface.streams.transact import Stream, from_log, transact
from protoface.streams.work import Job
from protoface.worker import metrics
from protoface.worker.render import framing, rig

log = logging.getLogger("protoface.builds")

MISSING_SOURCE = "The source image is no longer available."
UNBUILDABLE = "The avatar could not be built from this image."


class Builder:
    """Runs build jobs one at a time (a build takes the CPU; sessions keep the rest)."""

    def __init__(self, event_log: EventLog, store: AvatarStore, worker_id: str) -> None:
        self.log = event_log
        self.store = store
        self.worker_id = worker_id

    async def run(self, shutdown: asyncio.Event) -> None:
        queue = await BuildQueue.open(self.log)
        try:
            while not shutdown.is_set():
                try:
                    job = await queue.next(timeout=0.5)
                except Exception:  # reconnecting: the durable consumer is still there
                    log.warning("build queue unavailable", exc_info=True)
                    await asyncio.sleep(0.5)
                    continue
                if job is not None:
                    await self._handle(job)
        finally:
            await queue.close()

    async def _handle(self, job: Job) -> None:
        event = job.event
        if not isinstance(event, AvatarCreated):
            await job.done()
            return
        try:
            await self.build(event.avatar_id)
        except (LogUnavailable, ConcurrencyConflict):
            await job.later()  # someone (maybe us) tries again shortly
            return
        except Exception:
            log.exception("avatar build crashed", extra={"avatar_id": event.avatar_id})
            await job.later(5.0)
            return
        await job.done()

    async def build(self, avatar_id: str) -> None:
        """Build ``avatar_id`` if it still waits for it; record the outcome."""
        stream = Stream.avatar(avatar_id)
        load = from_log(self.log, stream, avatar.fold)
        state, _ = await load()
        if state is None or state.status != "processing":
            log.info("avatar build skipped", extra={
                "avatar_id": avatar_id, "status": state.status if state else None})
            return
        started = time.perf_counter()
        command = await self._outcome(state)
        try:
            # A conflict (deleted, or recorded by another worker, meanwhile) re-decides on
            # the latest state, where the outcome is refused or already recorded.
            done = await transact(self.log, stream, load,
                                  lambda latest: avatar.decide(command, latest, ids.new_event_id))
        except Rejected:
            done = None
        if done is None or not done.stored:
            if isinstance(command, avatar.RecordBuilt):
                await self._drop_unnamed(avatar_id, command.asset_key)
            return
        outcome = "ready" if isinstance(command, avatar.RecordBuilt) else "failed"
        metrics.AVATAR_BUILD_SECONDS.labels(outcome).observe(time.perf_counter() - started)
        log.info("avatar built", extra={"avatar_id": avatar_id, "outcome": outcome,
                                        "worker_id": self.worker_id})

    async def _drop_unnamed(self, avatar_id: str, asset_key: str) -> None:
        """A built asset that no event names must not stay behind."""
        latest, _ = await from_log(self.log, Stream.avatar(avatar_id), avatar.fold)()
        if latest is None or latest.asset_key != asset_key:
            await self.store.delete(asset_key)

    async def _outcome(self, state: avatar.Avatar) -> avatar.Command:
        def failed(reason: str) -> avatar.Command:
            return avatar.RecordFailed(avatar_id=state.id, org_id=state.org_id,
                                       now=datetime.now(UTC), failure_reason=reason,
                                       worker_id=self.worker_id)

        image = await self.store.get(state.source.key)
        if image is None:
            return failed(MISSING_SOURCE)
        try:
            asset = await asyncio.to_thread(rig.build_asset, image)
        except rig.RigError as refused:
            return failed(refused.reason)
        except Exception:
            # Not a refusal the rig explains: the same bytes would fail again on any
            # worker, so record it instead of redelivering the job forever.
            log.exception("avatar build raised", extra={"avatar_id": state.id})
            return failed(UNBUILDABLE)
        _log_upscales(state.id, asset)
        key = subjects.avatar_asset_key(state.id)
        await self.store.put(key, asset)
        return avatar.RecordBuilt(avatar_id=state.id, org_id=state.org_id,
                                  now=datetime.now(UTC), asset_key=key,
                                  asset_sha256=hashlib.sha256(asset).hexdigest(),
                                  asset_size=len(asset), worker_id=self.worker_id)


def _log_upscales(avatar_id: str, asset: bytes) -> None:
    """Tell the operator how much each tier enlarges the portrait (the Avatar resource has
    no field for it: the official SDK refuses extra ones)."""
    face = rig.load_asset(asset).rig.face.h
    upscale = framing.upscales(face)
    small = [tier for tier, share in framing.face_shares(face).items() if share < 1]
    level = logging.WARNING if small else logging.INFO
    log.log(level, "avatar portrait upscale", extra={
        "avatar_id": avatar_id, "upscale": upscale, "drawn_smaller": small})
