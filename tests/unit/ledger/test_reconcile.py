from __future__ import annotations

from collections import Counter

from services.ledger.domain.reconcile import BalanceAt, Status, compare
from services.ledger.usecases.reconcile import nothing_coming


def test_mongodb_behind_while_events_are_on_their_way_is_pending() -> None:
    row = compare("a", BalanceAt(90, 1, 10), BalanceAt(95, 1, 5), -5, nothing_coming=False)
    assert (row.status, row.status.drifts) == (Status.PENDING, False)


def test_mongodb_behind_once_nothing_more_can_come_is_drift() -> None:
    row = compare("a", BalanceAt(90, 1, 10), BalanceAt(95, 1, 5), 0, nothing_coming=True)
    assert (row.status, row.drift, row.status.drifts) == (Status.BEHIND, -5, True)


def test_behind_is_drift_even_when_the_balances_happen_to_agree() -> None:
    row = compare("a", BalanceAt(95, 1, 10), BalanceAt(95, 1, 5), 0, nothing_coming=True)
    assert row.status is Status.BEHIND


def test_a_fresh_epoch_with_nothing_charged_is_settled_when_idle() -> None:
    row = compare("a", BalanceAt(95, 3, 0), BalanceAt(95, 1, 5), 0, nothing_coming=True)
    assert row.status is Status.OK


def test_settled_accounts_that_differ_drift() -> None:
    row = compare("a", BalanceAt(90, 1, 5), BalanceAt(95, 1, 5), 0, nothing_coming=False)
    assert (row.status, row.drift) == (Status.DRIFT, -5)


def test_reused_positions_are_drift_until_settled_whatever_the_balances() -> None:
    row = compare("a", BalanceAt(95, 1, 5), BalanceAt(95, 1, 5), 0, True, reused=("e1",))
    assert (row.status, row.status.drifts, row.as_dict()["reused_events"]) == (
        Status.REUSED,
        True,
        ["e1"],
    )


def test_an_account_behind_one_of_its_dead_letters_is_behind_under_load() -> None:
    coming = nothing_coming("a", queue=500, outbox=Counter({"a": -2, "b": -3}), dead={"a": ["m"]})
    row = compare("a", BalanceAt(90, 1, 10), BalanceAt(95, 1, 5), -2, coming)
    assert (row.status, row.status.procedure.startswith("redrive")) == (Status.BEHIND, True)


def test_only_the_accounts_own_outbox_and_the_queue_keep_it_pending() -> None:
    assert nothing_coming("a", 0, Counter({"b": -1}), {"b": ["m"]})
    assert not nothing_coming("a", 0, Counter({"a": -1}), {})
    assert not nothing_coming("a", 3, Counter(), {"b": ["m"]})
