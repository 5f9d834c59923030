"""The avatars read model: live equals a rebuild from sequence 1, and a restored snapshot
plus the log's tail equals a rebuild (what ``audit verify`` relies on)."""

from __future__ import annotations

import httpx
import msgspec

from protoface.api.services import Services
from protoface.projections import snapshots
from protoface.projections.avatars import AvatarsModel
from protoface.projections.runner import Projector
from protoface.streams.snapshots import SnapshotStore
from protoface.worker.builds import Builder
from tests.api.support import auth
from tests.avatars import NO_FACE, upload_ok
from tests.conftest import KeyFactory
from tests.projections.support import UpTo, rebuild


async def some_avatars(client: httpx.AsyncClient, services: Services, key: str) -> None:
    """One ready, one failed, one deleted, one processing."""
    builder = Builder(services.log, services.avatars.store, "wrk_test")
    ready, failed, gone = (await upload_ok(client, key), await upload_ok(client, key, NO_FACE),
                           await upload_ok(client, key))
    for avatar in (ready, failed):
        await builder.build(avatar["id"])
    assert (await client.delete(f"/v1/avatars/{gone['id']}", headers=auth(key))).status_code == 204
    await upload_ok(client, key)
    await services.projector.catch_up()


async def test_the_live_model_equals_a_rebuild(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    await some_avatars(client, services, key)
    live = services.avatars.model
    cap, exported = live.last_seq, live.export()  # no await in between: one state
    rebuilt = await rebuild(services.log, cap, AvatarsModel)
    assert rebuilt.export() == exported
    org = next(a.org_id for a in live.avatars.values() if live.versions[a.id] <= cap)
    assert rebuilt.custom_count(org) == live.custom_count(org)


async def test_a_restored_snapshot_plus_the_tail_equals_a_rebuild(
    client: httpx.AsyncClient, services: Services, new_key: KeyFactory
) -> None:
    key = await new_key()
    await some_avatars(client, services, key)
    store = await SnapshotStore.open(services.log)
    # A copy: the API's periodic saver may write its own live model under the same name.
    saved = msgspec.msgpack.decode(msgspec.msgpack.encode(services.avatars.model),
                                   type=AvatarsModel)
    await snapshots.save(store, saved)
    restored = await snapshots.restore(store, AvatarsModel)
    assert restored.last_seq >= saved.last_seq
    await some_avatars(client, services, key)  # what the snapshot has not seen
    cap = services.avatars.model.last_seq

    projector = Projector(services.log, [UpTo(restored, cap)], metrics=False)
    await projector.start()
    try:
        await projector.wait_for(cap, timeout=30)
    finally:
        await projector.stop()
    assert restored.export() == (await rebuild(services.log, cap, AvatarsModel)).export()
