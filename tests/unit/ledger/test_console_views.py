"""The console's pure parts: where a dead letter's accounts stand, charts, sample buckets."""

from __future__ import annotations

from services.ledger.console.charts import chart
from services.ledger.console.letters import Missing, standings
from services.ledger.domain.apply import Position
from services.ledger.pipeline import Sample, per_bucket
from tests.stack import debit_event


def test_each_account_says_whether_its_events_apply_next_wait_or_are_already_applied() -> None:
    events = [
        debit_event("next", 4),
        debit_event("next", 5),
        debit_event("gap", 7),
        debit_event("done", 2),
        debit_event("partly", 3),
        debit_event("partly", 4),
        debit_event("settled", 1, epoch=3),
        debit_event("ghost", 1),
    ]
    positions = {
        "next": Position(1, 3),
        "gap": Position(1, 2),
        "done": Position(1, 9),
        "partly": Position(1, 3),
        "settled": Position(2, 40),
    }

    found = {s.account: (s.state, s.missing) for s in standings(events, positions)}

    assert found == {
        "done": ("already applied", None),
        "gap": ("waits for missing events", Missing(1, 3, 6)),
        "ghost": ("no such account in MongoDB", None),
        "next": ("applies next", None),
        "partly": ("applies next", None),
        "settled": ("applies next", None),
    }


def test_a_later_epoch_misses_its_own_first_events_not_the_old_epochs() -> None:
    (standing,) = standings([debit_event("a", 4, epoch=2)], {"a": Position(1, 10)})

    assert standing.missing == Missing(2, 1, 3)


def test_a_chart_spans_the_window_and_scales_to_the_peak() -> None:
    drawn = chart([(100.0, 0.0), (150.0, 5.0), (200.0, 10.0)], 100, 200, 100, 50)

    assert drawn.points == "0.0,50.0 50.0,25.0 100.0,0.0"
    assert (drawn.latest, drawn.peak) == (10.0, 10.0)
    assert chart([], 0, 1, 10, 10).latest is None
    assert chart([(0.0, 0.0), (1.0, 0.0)], 0, 1, 10, 10).points == "0.0,10.0 10.0,10.0"


def test_samples_of_several_replicas_add_up_per_bucket() -> None:
    samples = [
        Sample(100.5, [3.0, 1.0], "a"),
        Sample(101.0, [2.0, 2.0], "b"),
        Sample(110.2, [4.0, 1.0], "a"),
    ]

    assert per_bucket(samples, 10) == {100.0: [5.0, 3.0], 110.0: [4.0, 1.0]}
