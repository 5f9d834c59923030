"""Org commands (``protoface keys create``, ``protoface credits grant``): decide and append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from protoface.api.auth import key_hash, new_api_key
from protoface.domain import ids, org
from protoface.domain.errors import Rejected
from protoface.projections.orgs import OrgsModel
from protoface.streams import subjects
from protoface.streams.eventlog import ConcurrencyConflict, EventLog, Expect

# How often a grant is re-decided when the org's history moved on meanwhile (every
# admission of one of its sessions is an org event).
GRANT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Granted:
    org_id: str
    credits: int


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
    new_id = ids.new_event_id
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


async def grant_credits(log: EventLog, org_name: str, credits: int) -> Granted:
    """Add ``credits`` to the org ``org_name``'s balance (an ``org.credits_granted`` event).

    Raises :class:`Rejected` for an unknown org or a non-positive amount.
    """
    for _ in range(GRANT_ATTEMPTS):
        model = await load_orgs(log)
        org_id = model.by_name.get(org_name)
        if org_id is None:
            raise Rejected("not_found", "org_not_found", f"No org named {org_name!r}.")
        command = org.GrantCredits(org_id=org_id, credits=credits, now=datetime.now(UTC))
        events = org.decide(command, model.orgs.get(org_id), ids.new_event_id)
        try:
            await log.append(events, Expect(subjects.org_history(org_id),
                                            model.versions.get(org_id, 0)))
        except ConcurrencyConflict:
            continue
        return Granted(org_id, credits)
    raise ConcurrencyConflict(f"org {org_name}: the grant kept conflicting")
