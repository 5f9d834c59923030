"""Org commands (``protoface keys create``, ``protoface credits grant``): decide and append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from protoface.api.auth import key_hash, new_api_key
from protoface.domain import ids, org
from protoface.domain.errors import Rejected
from protoface.projections.orgs import OrgsModel
from protoface.streams import subjects
from protoface.streams.eventlog import EventLog
from protoface.streams.transact import Load, Stream, transact


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
    org_id = (await load_orgs(log)).by_name.get(org_name) or ids.new_id(ids.ORG)
    key = new_api_key()
    key_id = ids.new_id(ids.API_KEY)
    new_id = ids.new_event_id

    def decide(state: org.Org | None) -> list[org.Event]:
        events = org.decide(org.CreateOrg(org_id=org_id, name=org_name, plan=plan, now=now),
                            state, new_id)
        if state is not None:
            events += org.decide(org.ChangePlan(org_id=org_id, plan=plan, now=now), state,
                                 new_id)
        for event in events:
            state = org.evolve(state, event)
        return events + org.decide(
            org.CreateApiKey(org_id=org_id, key_id=key_id, key_hash=key_hash(key),
                             key_hint=key[-4:], now=now),
            state, new_id,
        )

    await transact(log, Stream.org(org_id), _org(log, org_id), decide)
    return IssuedKey(org_id, key_id, key)


async def grant_credits(log: EventLog, org_name: str, credits: int) -> Granted:
    """Add ``credits`` to the org ``org_name``'s balance (an ``org.credits_granted`` event).

    Raises :class:`Rejected` for an unknown org or a non-positive amount.
    """
    org_id = (await load_orgs(log)).by_name.get(org_name)
    if org_id is None:
        raise Rejected("not_found", "org_not_found", f"No org named {org_name!r}.")
    command = org.GrantCredits(org_id=org_id, credits=credits, now=datetime.now(UTC))
    await transact(log, Stream.org(org_id), _org(log, org_id),
                   lambda state: org.decide(command, state, ids.new_event_id))
    return Granted(org_id, credits)


def _org(log: EventLog, org_id: str) -> Load[org.Org | None]:
    """Load one org from the org events replayed (an org's own history holds every
    admission of its sessions: one replay beats a direct get per event)."""

    async def load() -> tuple[org.Org | None, int]:
        model = await load_orgs(log)
        return model.orgs.get(org_id), model.versions.get(org_id, 0)

    return load
