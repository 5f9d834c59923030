"""Helpers the projection specs share: capped models and rebuilds from sequence 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from protoface.domain.events import Event
from protoface.projections.runner import Model
from protoface.streams.eventlog import EventLog

M = TypeVar("M", bound=Model)


class UpTo(Generic[M]):
    """A model that ignores events after ``cap``, so a comparison is exact even if
    someone else appends to the shared log meanwhile."""

    def __init__(self, model: M, cap: int) -> None:
        self.model = model
        self.cap = cap

    @property
    def last_seq(self) -> int:
        return self.model.last_seq

    def apply(self, seq: int, event: Event) -> None:
        if seq <= self.cap:
            self.model.apply(seq, event)


async def rebuild(log: EventLog, until: int, make: Callable[[], M]) -> M:
    model = make()
    async for stored in log.replay(1, until=until):
        model.apply(stored.seq, stored.event)
    return model
