"""Capacity by cost: what fits in a worker's cost units, and the operator's pinned figure."""

from __future__ import annotations

import pytest

from protoface.domain import capacity


def test_room_is_what_the_free_units_fit_per_tier() -> None:
    # Given a worker of 550 units running 100 units' worth of sessions
    costs = {"lite": 20.0, "standard": 60.0, "pro": 180.0}
    # Then 450 free units fit 22 lite, 7 standard or 2 pro sessions
    assert capacity.room(costs, 550.0, 100.0, free_slots=64) == {
        "lite": 22, "standard": 7, "pro": 2}


def test_free_slots_bound_the_room() -> None:
    assert capacity.room({"lite": 1.0}, 550.0, 0.0, free_slots=4) == {"lite": 4}


def test_a_worker_over_its_capacity_has_no_room() -> None:
    assert capacity.room({"lite": 20.0}, 550.0, 560.0, free_slots=10) == {"lite": 0}


def test_a_session_fits_only_in_a_tier_with_a_cost_and_room() -> None:
    costs = {"lite": 20.0, "pro": 180.0}
    assert capacity.fits(costs, 550.0, 400.0, 10, "lite")
    assert not capacity.fits(costs, 550.0, 400.0, 10, "pro")  # 150 free < 180
    assert not capacity.fits(costs, 550.0, 0.0, 10, "standard")  # no cost: not served
    assert not capacity.fits(costs, 550.0, 0.0, 0, "lite")  # no free slot


def test_pinned_sessions_per_tier_become_costs_that_fit_exactly_that_many() -> None:
    costs = capacity.pinned_costs(550.0, {"lite": 24, "pro": 3})
    assert capacity.room(costs, 550.0, 0.0, 64) == {"lite": 24, "pro": 3}


def test_the_capacity_flag_parses_tier_counts_and_refuses_anything_else() -> None:
    assert capacity.parse_pinned("lite=24, standard=8,pro=3") == {
        "lite": 24, "standard": 8, "pro": 3}
    for bad in ("lite", "lite=0", "lite=x", "ultra=3"):
        with pytest.raises(ValueError):
            capacity.parse_pinned(bad)


def test_an_idle_worker_fits_one_session_of_a_tier_that_costs_more_than_it_has() -> None:
    assert capacity.room({"pro": 600.0}, 550.0, 0.0, 4) == {"pro": 1}
    assert capacity.room({"pro": 600.0}, 550.0, 20.0, 4) == {"pro": 0}
