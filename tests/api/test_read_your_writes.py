"""A list answered by one API process includes a session another process created a
moment ago: the list waits until its read model reaches the org's latest session event
in the log (as GET by id waits for the session's)."""

from __future__ import annotations

import asyncio

from protoface.api.sessions.service import SessionService
from protoface.projections.runner import Projector
from protoface.projections.sessions import Query, SessionsModel
from protoface.streams.eventlog import EventLog
from protoface.streams.server import EmbeddedNats
from tests.streams.support import creation, new_org, new_session


async def test_a_list_right_after_another_process_created_a_session_includes_it(
    private_nats: EmbeddedNats,
) -> None:
    writer, reader = (await EventLog.connect(private_nats.url),
                      await EventLog.connect(private_nats.url))
    org = new_org()
    # Given another process that has created many sessions, the last one just now …
    ids = [new_session() for _ in range(300)]
    await asyncio.gather(*(writer.append(creation(org, i)) for i in ids[:-1]))
    await writer.append(creation(org, ids[-1]))
    # … and this process's read model behind it (it has only started following the log)
    model = SessionsModel()
    projector = Projector(reader, [model], metrics=False)
    await projector.start()
    # (only the log, the projector and the model take part in a list)
    service = SessionService(reader, projector, model, None, None,  # type: ignore[arg-type]
                             avatars=None)  # type: ignore[arg-type]
    try:
        # When it lists the org's sessions at once, then the newest is in the page.
        page, has_more = await service.page(Query(org_id=org, limit=1))
        assert [s.id for s in page] == [ids[-1]] and has_more
    finally:
        await projector.stop()
        await writer.close()
        await reader.close()
