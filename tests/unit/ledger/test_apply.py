from __future__ import annotations

from services.ledger.domain.apply import Position, Voided, plan
from shared.accounting.events import Event


def event(account: str, epoch: int, seq: int, kind: str = "debit", amount: int = 1) -> Event:
    return Event(
        id=f"{account}-{epoch}-{seq}",
        type=kind,  # type: ignore[arg-type]
        account=account,
        amount=amount,
        epoch=epoch,
        seq=seq,
        reason="meme:text" if kind != "credit" else "purchase",
        request_id="r",
        at="2026-01-01T00:00:00.000Z",
    )


def test_consecutive_events_fold_into_one_update() -> None:
    events = [event("a", 1, 1), event("a", 1, 2, amount=2), event("a", 1, 3, "refund", 2)]
    result = plan(events, {"a": Position(1, 0)})
    assert (result.held, result.problems) == (set(), {})
    (update,) = result.updates
    assert (update.start, update.end) == (Position(1, 0), Position(1, 3))
    assert (update.balance, update.calls, update.tokens_spent) == (-1, 1, 1)
    assert update.calls_by_kind == {"text": 1}


def test_events_of_several_messages_fold_per_account() -> None:
    events = [event("a", 1, 1), event("b", 1, 1), event("a", 1, 2), event("b", 1, 2)]
    result = plan(events, {"a": Position(1, 0), "b": Position(1, 0)})
    assert [(u.account, u.end.seq, len(u.events)) for u in result.updates] == [
        ("a", 2, 2),
        ("b", 2, 2),
    ]


def test_events_already_applied_are_skipped() -> None:
    result = plan([event("a", 1, 1), event("a", 1, 2), event("a", 1, 3)], {"a": Position(1, 2)})
    assert [e.seq for e in result.duplicates] == [1, 2]
    assert [e.seq for e in result.updates[0].events] == [3]


def test_a_whole_duplicate_delivery_changes_nothing() -> None:
    result = plan([event("a", 1, 1), event("a", 1, 2)], {"a": Position(1, 2)})
    assert (result.updates, len(result.duplicates), result.held) == ([], 2, set())


def test_an_older_epoch_is_a_duplicate() -> None:
    result = plan([event("a", 1, 7)], {"a": Position(2, 1)})
    assert (result.updates, len(result.duplicates)) == ([], 1)


def test_a_voided_credit_moves_the_position_but_not_the_balance() -> None:
    first, repeat = event("a", 1, 1, "credit", 50), event("a", 1, 2, "credit", 50)
    (update,) = plan([first, repeat], {"a": Position(1, 0)}).updates
    update.void(repeat, Voided(first.id, "repeats credit"))
    assert (update.end, update.balance) == (Position(1, 2), 50)
    assert update.voided == {repeat.id: Voided(first.id, "repeats credit")}


def test_a_voided_refund_gives_back_neither_tokens_nor_the_call() -> None:
    debit, first, repeat = (
        event("a", 1, 1, "debit", 2),
        event("a", 1, 2, "refund", 2),
        event("a", 1, 3, "refund", 2),
    )
    (update,) = plan([debit, first, repeat], {"a": Position(1, 0)}).updates
    update.void(repeat, Voided(first.id, "repeats refund"))
    assert (update.end, update.balance, update.calls, update.tokens_spent) == (
        Position(1, 3),
        0,
        0,
        0,
    )


def test_a_gap_holds_that_account_from_the_gap_on_and_others_apply() -> None:
    events = [event("a", 1, 2), event("a", 1, 4), event("a", 1, 5), event("b", 1, 1)]
    result = plan(events, {"a": Position(1, 1), "b": Position(0, 0)})
    assert "gap for 'a'" in result.problems["a"]
    assert result.held == {"a-1-4", "a-1-5"}
    assert [(u.account, u.end.seq) for u in result.updates] == [("a", 2), ("b", 1)]


def test_a_new_epoch_starts_at_seq_one_after_the_old_epoch_drains() -> None:
    events = [event("a", 1, 5), event("a", 3, 1), event("a", 3, 2)]
    result = plan(events, {"a": Position(1, 4)})
    assert result.held == set()
    (update,) = result.updates
    assert update.end == Position(3, 2, ended=((1, 5),))
    assert update.epochs_left == ((1, 5),)


def test_an_old_epochs_event_past_its_last_applied_seq_is_stranded_not_a_duplicate() -> None:
    position = Position(3, 2, ended=((0, 0), (1, 5)))
    result = plan([event("a", 1, 5), event("a", 1, 6), event("a", 2, 1)], {"a": position})
    assert [e.id for e in result.duplicates] == ["a-1-5"]
    assert [e.id for e in result.stranded] == ["a-1-6", "a-2-1"]  # epoch 2 had none applied
    assert result.updates == []


def test_epochs_left_before_they_were_kept_stay_duplicates() -> None:
    position = Position(5, 2, ended=((3, 7),))
    result = plan([event("a", 2, 9), event("a", 3, 8)], {"a": position})
    assert [e.id for e in result.duplicates] == ["a-2-9"]
    assert [e.id for e in result.stranded] == ["a-3-8"]


def test_a_new_epoch_not_starting_at_one_is_a_gap() -> None:
    assert plan([event("a", 2, 2)], {"a": Position(1, 9)}).held == {"a-2-2"}


def test_an_unknown_account_is_held_with_a_reason() -> None:
    result = plan([event("ghost", 1, 1)], {})
    assert result.held == {"ghost-1-1"}
    assert "unknown account" in result.problems["ghost"]


def test_credits_add_to_the_balance_without_usage() -> None:
    (update,) = plan([event("a", 1, 1, "credit", 50)], {"a": Position(0, 0)}).updates
    assert (update.balance, update.calls, update.tokens_spent) == (50, 0, 0)


def test_a_close_takes_what_the_book_holds_after_the_events_before_it() -> None:
    """A lost Redis's book: the debits it shipped apply, then the close takes the rest
    as spent, and the new epoch's events count from zero."""
    events = [
        event("b", 1, 4),
        event("b", 1, 5, amount=2),
        event("b", 2, 1, "close", amount=0),
        event("b", 2, 2, "credit", amount=5),
    ]
    result = plan(events, {"b": Position(1, 3)}, {"b": 10})
    (update,) = result.updates
    assert [e.amount for e in update.events] == [1, 2, 7, 5]
    assert (update.balance, update.start_balance) == (-5, 10)
    assert (update.calls, update.tokens_spent) == (2, 3)  # the close is no call
    assert update.end == Position(2, 2, ((1, 5),))


def test_a_close_never_takes_a_debt_and_waits_for_the_balance_it_takes() -> None:
    close = event("b", 2, 1, "close", amount=0)
    (update,) = plan([close], {"b": Position(1, 3)}, {"b": -3}).updates
    assert (update.events[0].amount, update.balance) == (0, 0)
    waiting = plan([event("b", 1, 4), close], {"b": Position(1, 3)})
    assert [e.seq for u in waiting.updates for e in u.events] == [4]
    assert waiting.held == {close.id}
    assert plan([close], {"b": Position(2, 1)}, {"b": 0}).duplicates == [close]
