"""The Org aggregate: a customer account, its plan, its API keys, credit grants, and
admission.

Admission (the plan's concurrency cap) is a decision of the Org: it appends
``org.session_admitted`` (or ``org.sessions_admitted`` for a group of creates
decided together) conditionally on the org's previous admission (optimistic
concurrency), so concurrent creates cannot overshoot the cap. The
session's own ``session.created`` follows; a session reaching a terminal state
frees its slot through the same log, so replay reproduces every decision. An
admission whose session never appears (its API process died in between) stops
counting after ``ADMISSION_GRACE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import msgspec

from protoface.domain.errors import CONFLICT, INVALID, QUOTA, Rejected
from protoface.domain.plans import PLANS, Plan

# ── Events: the storage format ──────────────────────────────────────────────────


class OrgEvent(msgspec.Struct, gc=False, frozen=True, kw_only=True, tag_field="type"):
    id: str
    org_id: str
    at: datetime


class OrgCreated(OrgEvent, frozen=True, tag="org.created"):
    name: str
    plan: str


class ApiKeyCreated(OrgEvent, frozen=True, tag="org.api_key_created"):
    key_id: str
    # sha256 of the key: the key itself is shown once and never stored.
    key_hash: str
    # The last four characters, so a person can tell keys apart.
    key_hint: str


class ApiKeyRevoked(OrgEvent, frozen=True, tag="org.api_key_revoked"):
    key_id: str


class PlanChanged(OrgEvent, frozen=True, tag="org.plan_changed"):
    plan: str


class SessionAdmitted(OrgEvent, frozen=True, tag="org.session_admitted"):
    session_id: str


class SessionsAdmitted(OrgEvent, frozen=True, tag="org.sessions_admitted"):
    """Several sessions admitted by one decision (group admission): creates that
    waited on the same org together cost one conditional append, not one each.
    Stored on the org's admissions subject, like ``org.session_admitted``."""

    session_ids: tuple[str, ...] = ()


class CreditsGranted(OrgEvent, frozen=True, tag="org.credits_granted"):
    """Credits an operator added (``protoface credits grant``); they never expire."""

    credits: int = 0


Event = (
    OrgCreated | ApiKeyCreated | ApiKeyRevoked | PlanChanged | SessionAdmitted | SessionsAdmitted
    | CreditsGranted
)
AdmissionEvent = SessionAdmitted | SessionsAdmitted

ADMISSION_GRACE = timedelta(seconds=30)
# The most sessions one ``org.sessions_admitted`` names (bounds the event's size).
MAX_GROUP = 256


# ── Fold ────────────────────────────────────────────────────────────────────────


class ApiKey(msgspec.Struct, gc=False, frozen=True):
    key_id: str
    key_hash: str
    key_hint: str
    created_at: datetime
    revoked: bool = False


class Org(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    id: str
    name: str
    plan: str
    created_at: datetime
    keys: tuple[ApiKey, ...] = ()

    @property
    def plan_limits(self) -> Plan:
        return PLANS[self.plan]


def evolve(state: Org | None, event: Event) -> Org | None:
    match event:
        case OrgCreated(org_id=org_id, name=name, plan=plan, at=at):
            return state or Org(id=org_id, name=name, plan=plan, created_at=at)
        case ApiKeyCreated(key_id=key_id, key_hash=key_hash, key_hint=hint, at=at):
            if state is None or any(k.key_id == key_id for k in state.keys):
                return state
            return msgspec.structs.replace(
                state, keys=(*state.keys, ApiKey(key_id, key_hash, hint, at))
            )
        case ApiKeyRevoked(key_id=key_id):
            if state is None:
                return state
            keys = tuple(
                msgspec.structs.replace(k, revoked=True) if k.key_id == key_id else k
                for k in state.keys
            )
            return msgspec.structs.replace(state, keys=keys)
        case PlanChanged(plan=plan):
            return state and msgspec.structs.replace(state, plan=plan)
    return state


# ── Commands and decisions ──────────────────────────────────────────────────────


class CreateOrg(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    name: str
    plan: str
    now: datetime


class CreateApiKey(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    key_id: str
    key_hash: str
    key_hint: str
    now: datetime


class ChangePlan(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    plan: str
    now: datetime


class GrantCredits(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    org_id: str
    credits: int
    now: datetime


Command = CreateOrg | CreateApiKey | ChangePlan | GrantCredits


def decide(command: Command, state: Org | None, new_id: Callable[[], str]) -> list[Event]:
    match command:
        case CreateOrg(org_id=org_id, name=name, plan=plan, now=now):
            _known_plan(plan)
            if state is not None:
                return []
            return [OrgCreated(id=new_id(), org_id=org_id, at=now, name=name, plan=plan)]
        case CreateApiKey(key_id=key_id, key_hash=key_hash, key_hint=hint, now=now):
            org = _existing(state, command.org_id)
            if any(k.key_id == key_id for k in org.keys):
                return []
            return [ApiKeyCreated(id=new_id(), org_id=org.id, at=now, key_id=key_id,
                                  key_hash=key_hash, key_hint=hint)]
        case ChangePlan(plan=plan, now=now):
            org = _existing(state, command.org_id)
            _known_plan(plan)
            if org.plan == plan:
                return []
            return [PlanChanged(id=new_id(), org_id=org.id, at=now, plan=plan)]
        case GrantCredits(credits=credits, now=now):
            org = _existing(state, command.org_id)
            if credits <= 0:
                raise Rejected(INVALID, "invalid_credits",
                               "A grant must be a positive whole number of credits.", "credits")
            # Not idempotent on purpose: every grant is a new one (the event id
            # de-duplicates retries of the same append).
            return [CreditsGranted(id=new_id(), org_id=org.id, at=now, credits=credits)]
    raise TypeError(f"not an org command: {command!r}")


def admit(plan: Plan, active_sessions: int) -> None:
    """Refuse a new session when the org already runs its plan's cap."""
    if active_sessions >= plan.max_concurrency:
        raise over_cap(plan)


def over_cap(plan: Plan) -> Rejected:
    """The refusal of a session over the plan's concurrency cap."""
    return Rejected(
        QUOTA, "concurrent_sessions",
        f"Your {plan.name} plan allows {plan.max_concurrency} concurrent session(s); "
        "end one or upgrade.",
    )


def decide_group_admission(
    org: Org, session_ids: Sequence[str], active_sessions: int, now: datetime,
    new_id: Callable[[], str],
) -> tuple[list[Event], int]:
    """Admit, in order, as many of ``session_ids`` as the plan's cap leaves room for.

    Returns the event recording the admitted ones (``org.session_admitted`` for one,
    ``org.sessions_admitted`` for more; none when there is no room) and how many of
    the leading ``session_ids`` it admits: the rest are over the cap (:func:`over_cap`).
    ``active_sessions`` counts the org's non-terminal sessions and its admissions
    younger than ``ADMISSION_GRACE`` whose session has not appeared yet.
    """
    if len(session_ids) > MAX_GROUP:
        raise ValueError(f"at most {MAX_GROUP} sessions in one admission")
    room = max(0, org.plan_limits.max_concurrency - active_sessions)
    admitted = tuple(session_ids[:room])
    if not admitted:
        return [], 0
    if len(admitted) == 1:
        return [SessionAdmitted(id=new_id(), org_id=org.id, at=now, session_id=admitted[0])], 1
    event = SessionsAdmitted(id=new_id(), org_id=org.id, at=now, session_ids=admitted)
    return [event], len(admitted)


def admitted_sessions(event: AdmissionEvent) -> tuple[str, ...]:
    """The sessions an admission event admits."""
    if isinstance(event, SessionAdmitted):
        return (event.session_id,)
    return event.session_ids


def clamp_duration(plan: Plan, requested: int | None) -> int:
    """The effective ``max_duration_seconds``: the request (default 600) capped by the plan."""
    return min(requested if requested is not None else 600, plan.session_time_limit_seconds)


def _existing(state: Org | None, org_id: str) -> Org:
    if state is None:
        raise Rejected("not_found", "org_not_found", f"No org {org_id}.")
    return state


def _known_plan(plan: str) -> None:
    if plan not in PLANS:
        raise Rejected(CONFLICT, "unknown_plan", f"No plan {plan!r}.")
