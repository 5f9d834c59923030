"""A worker whose frames run late stops claiming until they keep time again."""

from __future__ import annotations

from protoface.worker.capacity.overload import MIN_TICKS, LateWindow, Overload
from protoface.worker.runtime import Worker, WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ticks(window: LateWindow, clock: Clock, seconds: int, late_every: int | None) -> None:
    """25 ticks a second for ``seconds``; every ``late_every``-th one late."""
    for n in range(25 * seconds):
        clock.now += 0.04
        window.record(late=late_every is not None and n % late_every == 0)


def test_more_than_one_percent_late_over_five_seconds_is_an_overload() -> None:
    clock = Clock()
    window = LateWindow(5.0, clock)
    overload = Overload(window)
    ticks(window, clock, 5, late_every=200)  # 0.5 % late
    assert overload.check("wrk_1") is None
    ticks(window, clock, 5, late_every=20)  # 5 % late
    reason = overload.check("wrk_1")
    assert reason is not None and "late" in reason


def test_the_worker_recovers_once_the_late_ticks_leave_the_window() -> None:
    clock = Clock()
    window = LateWindow(5.0, clock)
    overload = Overload(window)
    ticks(window, clock, 5, late_every=10)
    assert overload.check("wrk_1") is not None
    ticks(window, clock, 6, late_every=None)  # a whole window on time
    assert overload.check("wrk_1") is None


def test_too_few_ticks_say_nothing() -> None:
    clock = Clock()
    window = LateWindow(5.0, clock)
    for _ in range(MIN_TICKS - 1):
        window.record(late=True)
    assert Overload(window).check("wrk_1") is None


def test_an_overloaded_worker_has_room_for_nothing_and_says_why() -> None:
    clock = Clock()
    window = LateWindow(5.0, clock)
    worker = Worker(None, None, WorkerSettings(slots=8))  # type: ignore[arg-type]
    worker.overload = Overload(window)
    worker.costs = {"lite": 20.0, "pro": 180.0}
    assert worker.room() == {"lite": 8, "pro": 3}
    ticks(window, clock, 5, late_every=10)
    assert worker.room() == {"lite": 0, "pro": 0}
    assert worker.overload.reason is not None
