"""Prefixed ULID identifiers (``sess_…``, ``av_…``, ``org_…``, ``req_…``).

ULIDs sort by creation time, which gives "newest first" lists for free.
"""

from __future__ import annotations

import re
from datetime import datetime

from ulid import ULID

SESSION = "sess"
AVATAR = "av"
ORG = "org"
REQUEST = "req"
EVENT = "evt"
API_KEY = "key"
WORKER = "wrk"

_ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def new_id(prefix: str, at: datetime | None = None) -> str:
    """A fresh id; ``at`` pins the time part (events use their own timestamp)."""
    ulid = ULID.from_datetime(at) if at is not None else ULID()
    return f"{prefix}_{ulid}"


def new_event_id() -> str:
    """A fresh event id: what every ``decide`` is given to name the events it makes."""
    return new_id(EVENT)


def time_of(value: str) -> datetime | None:
    """When the ULID in ``<prefix>_<ULID>`` was made (ms precision); None if it is not one."""
    tail = value.partition("_")[2]
    if not _ULID_RE.match(tail):
        return None
    return ULID.from_str(tail).datetime


def is_valid(prefix: str, value: str) -> bool:
    """Whether ``value`` is ``<prefix>_<ULID>`` (stock avatar ids are checked elsewhere)."""
    head, sep, tail = value.partition("_")
    return sep == "_" and head == prefix and bool(_ULID_RE.match(tail))
