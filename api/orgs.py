"""Org and API key commands (used by ``protoface keys create``): decide and append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from api.auth import key_hash, new_api_key
from domain import ids, org
from projections.orgs import OrgsModel
from streams import subjects
from streams.eventlog import EventLog, Expect


@dataclass(frozen=True, slots=True)
class IssuedKey:
    org_id: str
    key_id: str
    key: str  # shown once, never stored


async def load_orgs(log: EventLog) -> OrgsModel:
    model = OrgsModel()
    async for stored in log.replay(1, subject=subjects.ORG_EVENTS):
        model.apply(stored.seq, stored.event)
    return model


async def create_key(log: EventLog, org_name: str, plan: str) -> IssuedKey:
    """Create the org ``org_name`` if it does not exist yet, then a new API key for it."""
    now = datetime.now(UTC)
    model = await load_orgs(log)
    org_id = model.by_name.get(org_name) or ids.new_id(ids.ORG)
    state = model.orgs.get(org_id)
    version = model.versions.get(org_id, 0)
    new_id = lambda: ids.new_id(ids.EVENT)  # noqa: E731
    events = org.decide(org.CreateOrg(org_id=org_id, name=org_name, plan=plan, now=now),
                        state, new_id)
    if state is not None:
        events += org.decide(org.ChangePlan(org_id=org_id, plan=plan, now=now), state, new_id)
    key = new_api_key()
    key_id = ids.new_id(ids.API_KEY)
    for event in events:
        state = org.evolve(state, event)
    events += org.decide(
        org.CreateApiKey(org_id=org_id, key_id=key_id, key_hash=key_hash(key),
                         key_hint=key[-4:], now=now),
        state, new_id,
    )
    await log.append(events, Expect(subjects.org_history(org_id), version))
    return IssuedKey(org_id, key_id, key)
