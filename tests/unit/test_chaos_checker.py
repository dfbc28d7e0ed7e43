"""The checker derives every balance from the history alone and misses nothing."""

from __future__ import annotations

from typing import Any

from chaos.checker import Observed, check, expectations
from chaos.history import Record


def account(name: str, tokens: int, t: float = 0.0) -> Record:
    return {"t": t, "type": "account", "account": name, "tokens": tokens, "ai": False}


def meme(name: str, status: int | None, kind: str = "text", t: float = 1.0, **more: Any) -> Record:
    charged = {"text": 1, "ai": 2}[kind] if status == 200 else None
    fields = {"charged": charged, "kind": kind} if status == 200 else {}
    record = {"t": t, "type": "meme", "id": f"m{t}", "account": name, "status": status}
    return record | {"gateway": 1} | fields | more


def credit(
    name: str, key: str, status: int | None, amount: int = 5, t: float = 1.0, **more: Any
) -> Record:
    return {
        "t": t, "type": "credit", "account": name, "key": key, "amount": amount, "status": status
    } | more  # fmt: skip


def books(**balances: int | None) -> Observed:
    return Observed(
        redis=dict(balances),
        mongo=dict(balances),
        dead_letters=[],
        reconcile_exit=0,
        reconcile_output="",
        left_running=[],
    )


def test_only_memes_answered_200_cost_their_price_and_each_credit_key_counts_once() -> None:
    history = [
        account("a", 100),
        meme("a", 200),
        meme("a", 200, "ai"),
        meme("a", 502),
        meme("a", None, error="ServerDisconnectedError"),
        meme("a", 402),
        credit("a", "k1", None, error="TimeoutError"),
        credit("a", "k1", 202, event="e1"),
        credit("a", "k1", 202, event="e1"),
        credit("a", "k2", 503),
        credit("a", "k2", 202, event="e2", amount=5),
    ]
    expected, problems = expectations(history)
    assert (expected["a"].balance, problems) == (100 - 3 + 10, [])
    assert check(history, books(a=107)).ok


def test_a_charge_for_an_error_or_a_credit_counted_twice_is_reported_with_its_figures() -> None:
    history = [account("a", 100), meme("a", 200), meme("a", 502), credit("a", "k", 202)]
    charged_for_the_error = check(history, books(a=103))
    assert not charged_for_the_error.ok
    assert charged_for_the_error.lost == 2  # one token below, in each book
    assert "expected 104" in charged_for_the_error.failures[0]
    credited_twice = check(history, books(a=109))
    assert (credited_twice.ok, credited_twice.extra) == (False, 10)


def test_the_books_must_agree_and_leave_nothing_behind() -> None:
    history = [account("a", 10), account("b", 10)]
    split = Observed(
        redis={"a": 10, "b": None},
        mongo={"a": 9, "b": 10},
        dead_letters=[{"line": "m1 accounts=a"}],
        reconcile_exit=1,
        reconcile_output="a drift",
        left_running=[4242],
    )
    failures = check(history, split).failures
    assert any("mongo balance 9" in f for f in failures)
    assert any("redis 10 ≠ mongo 9" in f for f in failures)
    assert any("dead letter" in f for f in failures)
    assert any("reconcile exited 1" in f for f in failures)
    assert any("4242" in f for f in failures)
    assert not any(f.startswith("b:") for f in failures)  # not in Redis: MongoDB alone


def test_an_answer_that_charged_the_wrong_price_is_reported() -> None:
    wrong = meme("a", 200) | {"charged": 2}
    assert "price is 1" in expectations([account("a", 10), wrong])[1][0]


def test_a_credit_whose_replays_name_another_event_is_reported() -> None:
    history = [
        account("a", 10),
        credit("a", "k", 202, event="e1"),
        credit("a", "k", 202, event="e2"),
    ]
    assert "different events" in expectations(history)[1][0]


def test_a_credit_never_answered_may_count_or_not() -> None:
    history = [account("a", 10), credit("a", "k", None, error="TimeoutError")]
    assert check(history, books(a=10)).ok
    assert check(history, books(a=15)).ok
    assert not check(history, books(a=16)).ok


def test_a_rollback_forgives_only_what_was_answered_inside_its_window() -> None:
    history = [
        account("a", 100),
        {"t": 10.0, "type": "snapshot", "target": "redis"},
        meme("a", 200, t=11.0),
        credit("a", "k", 202, t=12.0),
        {"t": 13.0, "type": "recovered", "kind": "redis-rollback", "target": "redis", "began": 9.0},
        meme("a", 200, t=15.0),
    ]
    assert check(history, books(a=103)).ok  # everything counted
    assert check(history, books(a=99)).ok  # the meme and the credit lost with the tail
    assert check(history, books(a=98)).ok  # the credit lost, the meme counted
    assert not check(history, books(a=97)).ok  # beyond what the window can explain
    assert not check(history, books(a=105)).ok


def test_a_meme_may_be_free_only_if_its_gateway_died_or_froze_past_the_margin_as_it_answered() -> (
    None
):
    def fault(kind: str, gateway: int, t: float, hold_s: float) -> Record:
        target = f"gateway-{gateway}"
        return {"t": t, "type": "fault", "kind": kind, "target": target, "hold_s": hold_s}

    run: Record = {"t": 0.0, "type": "run", "settle_margin_s": 5.0}
    killed = [run, account("a", 10), meme("a", 200, t=9.5, gateway=2), fault("sigkill", 2, 10, 1)]
    assert check(killed, books(a=10)).ok  # the sweeper refunded the unconfirmed charge
    assert check(killed, books(a=9)).ok
    other_gateway = [*killed[:2], meme("a", 200, t=9.5, gateway=1), killed[3]]
    assert not check(other_gateway, books(a=10)).ok
    short_freeze = [*killed[:3], fault("sigstop", 2, 10, 4.0)]
    assert not check(short_freeze, books(a=10)).ok
    long_freeze = [*killed[:3], fault("sigstop", 2, 10, 8.0)]
    assert check(long_freeze, books(a=10)).ok


def test_drift_reconcile_found_once_idle_is_a_failure_unless_a_rollback_explains_it() -> None:
    found: Record = {"t": 5.0, "type": "runbooks", "steps": {}, "found": {"drift": 2}}
    assert "2 accounts drifting" in check([account("a", 10), found], books(a=10)).failures[0]
    rolled = [
        account("a", 10),
        {"t": 1.0, "type": "snapshot", "target": "redis"},
        {"t": 2.0, "type": "recovered", "kind": "redis-rollback", "target": "redis", "began": 1},
        found,
    ]
    assert check(rolled, books(a=10)).ok
