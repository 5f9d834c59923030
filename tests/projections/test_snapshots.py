"""Snapshots: a model restored from its snapshot and fed the log's tail equals a rebuild."""

from __future__ import annotations

from protoface.domain import session as s
from protoface.projections import snapshots
from protoface.projections.orgs import OrgsModel
from protoface.projections.runner import Projector
from protoface.projections.sessions import SessionsModel
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog, Expect
from protoface.streams.snapshots import SnapshotStore
from tests.streams.support import creation, heartbeat, new_org, new_session, starting


async def rebuilt(log: EventLog) -> tuple[SessionsModel, OrgsModel]:
    sessions, orgs = SessionsModel(), OrgsModel()
    async for stored in log.replay(1):
        sessions.apply(stored.seq, stored.event)
        orgs.apply(stored.seq, stored.event)
    return sessions, orgs


async def some_sessions(log: EventLog, org: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        sid = new_session()
        seq = await log.append(creation(org, sid), Expect(subjects.session_history(sid), 0))
        seq = await log.append([starting(org, sid)], Expect(subjects.session_history(sid), seq))
        await log.append([heartbeat(org, sid, 25)], Expect(subjects.session_history(sid), seq))
        ids.append(sid)
    return ids


async def test_restored_snapshot_plus_the_tail_equals_a_rebuild(event_log: EventLog) -> None:
    store = await SnapshotStore.open(event_log)
    org = new_org()
    await some_sessions(event_log, org, 3)
    live, live_orgs = await rebuilt(event_log)
    await snapshots.save(store, live)
    await snapshots.save(store, live_orgs)
    later = await some_sessions(event_log, org, 2)  # what the snapshot has not seen

    restored = await snapshots.restore(store, SessionsModel)
    restored_orgs = await snapshots.restore(store, OrgsModel)
    assert restored.last_seq == live.last_seq
    assert all(sid not in restored.sessions for sid in later)
    projector = Projector(event_log, [restored, restored_orgs])
    await projector.start()
    try:
        await projector.catch_up()
    finally:
        await projector.stop()
    sessions, orgs = await rebuilt(event_log)
    assert restored.export() == sessions.export()
    assert restored_orgs.export() == orgs.export()
    assert restored.get(org, later[-1]) is not None
    assert restored.sessions[later[-1]].status == "starting"
    assert isinstance(restored.sessions[later[-1]].transport, s.PipecatTransport)


async def test_an_unreadable_snapshot_means_a_full_rebuild(event_log: EventLog) -> None:
    store = await SnapshotStore.open(event_log)
    await store.save(snapshots.NAMES[SessionsModel], b"\xc1 not msgpack")
    model = await snapshots.restore(store, SessionsModel)
    assert model.last_seq == 0 and not model.sessions
