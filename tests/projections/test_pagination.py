"""The one cursor pagination: newest first, ``limit``, ``has_more``, ``next_cursor``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from protoface.projections.pagination import Page, newest_first, paginate


@dataclass(frozen=True)
class Item:
    id: str


IDS = [f"x_{i:02d}" for i in range(5)]  # ascending = creation order


def test_newest_first_walks_down_from_the_cursor() -> None:
    assert list(newest_first(IDS)) == IDS[::-1]
    assert list(newest_first(IDS, "x_03")) == ["x_02", "x_01", "x_00"]
    assert list(newest_first(IDS, "x_00")) == []
    assert list(newest_first([], None)) == []


def test_a_full_page_says_more_follow_and_where_to_start() -> None:
    page = paginate((Item(i) for i in newest_first(IDS)), 2)
    assert [x.id for x in page.items] == ["x_04", "x_03"]
    assert page.has_more and page.next_cursor == "x_03"


def test_the_last_page_has_no_cursor() -> None:
    page = paginate((Item(i) for i in newest_first(IDS, "x_02")), 2)
    assert [x.id for x in page.items] == ["x_01", "x_00"]
    assert not page.has_more and page.next_cursor is None
    assert paginate(iter([]), 20) == ([], False)


def test_paginate_looks_at_one_item_past_the_limit_only() -> None:
    seen: list[str] = []

    def walk() -> Iterator[Item]:
        for i in newest_first(IDS):
            seen.append(i)
            yield Item(i)

    paginate(walk(), 2)
    assert seen == ["x_04", "x_03", "x_02"]


def test_map_keeps_the_cursor() -> None:
    page = Page([Item("x_01"), Item("x_00")], True)
    assert page.map(lambda x: Item(x.id.upper())).next_cursor == "X_00"
