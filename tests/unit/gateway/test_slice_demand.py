"""A region's demand estimate for one book: looks weigh by the time they cover."""

from __future__ import annotations

import time

import pytest

from services.gateway.usecases.slices import Book

WEIGHT = 0.3


class Clock:
    """The monotonic clock, moved by the test (a book's first look starts from the real one)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


def spend(book: Book, clock: Clock, tokens: int, over_s: float) -> float:
    """`tokens` charged over the next `over_s`, then a look."""
    clock.now += over_s
    book.spent += tokens
    return book.observe(WEIGHT)


def test_a_burst_raises_the_demand_within_its_first_second(clock: Clock) -> None:
    book = Book(since=clock.now)
    for _ in range(3):
        demand = spend(book, clock, 8, 0.11)  # 73 tokens a second for a third of a second
    assert 5 < demand < 73


def test_looks_weigh_by_the_time_they_cover(clock: Clock) -> None:
    often = Book(since=clock.now)
    once = Book(since=clock.now)
    spend(often, clock, 5, 0.11)
    spend(often, clock, 5, 0.11)
    clock.now -= 0.22
    spend(once, clock, 10, 0.22)
    assert often.demand.per_s == pytest.approx(once.demand.per_s, rel=0.05)


def test_what_is_spent_within_a_tenth_of_a_second_counts_at_the_next_look(
    clock: Clock,
) -> None:
    book = Book(since=clock.now)
    assert spend(book, clock, 4, 0.05) == 0.0
    assert spend(book, clock, 0, 0.06) > 0.0
