"""Cursor pagination, the one way every list is paged (API and read models alike).

Lists are newest first; a page holds at most ``limit`` items and says whether more
follow; the cursor of the next page is the id of the last item served
(``starting_after=<id>``). Ids are ULID-based, so ascending id order is creation order
and a cursor finds its place by bisection, however many items precede it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)
U = TypeVar("U", bound=Identified)


class Page(NamedTuple, Generic[T]):
    """One page: a tuple ``(items, has_more)``, so it unpacks like the pair it is."""

    items: list[T]
    has_more: bool

    @property
    def next_cursor(self) -> str | None:
        """What the next page starts after; None on the last page."""
        return self.items[-1].id if self.has_more and self.items else None

    def map(self, render: Callable[[T], U]) -> Page[U]:
        """The same page with every item rendered (ids are kept, so is the cursor)."""
        return Page([render(item) for item in self.items], self.has_more)


def paginate(ordered: Iterable[T], limit: int) -> Page[T]:
    """The first ``limit`` items of ``ordered``; one more is looked at to tell whether
    more follow, never the rest (``ordered`` may be a lazy walk over a large model)."""
    items = list(itertools.islice(ordered, limit + 1))
    return Page(items[:limit], len(items) > limit)


def newest_first(ids: Sequence[str], starting_after: str | None = None) -> Iterator[str]:
    """``ids`` (ascending) from the newest down, after the cursor if one is given."""
    end = len(ids) if starting_after is None else bisect.bisect_left(ids, starting_after)
    for i in range(end - 1, -1, -1):
        yield ids[i]
