"""A position Redis gave out twice is held and recorded, and settle's adoption counts it once."""

from __future__ import annotations

from services.ledger.domain.apply import Outcome
from services.ledger.usecases.settle import adopt_reuses
from tests.ledger_harness import Ledger, message
from tests.stack import debit_event


async def test_a_reused_position_is_held_and_settle_adopts_it_exactly_once(
    ledger: Ledger,
) -> None:
    await ledger.accounts.create("rolled", 100)
    worker = ledger.worker()
    shipped = [debit_event("rolled", seq) for seq in (1, 2, 3)]
    assert (await worker.handle([message(shipped)])).popitem()[1].outcome is Outcome.APPLIED
    # Redis came back without seqs 2 and 3 and numbered new charges 2, 3 and 4.
    renumbered = [debit_event("rolled", seq) for seq in (2, 3, 4)]
    again = message(renumbered)

    handled = (await worker.handle([again]))[again.message_id]

    assert handled.outcome is Outcome.GAP
    assert f"reused position for 'rolled': epoch 1 seq 2 is event {shipped[1].id}" in handled.reason
    assert await balance_and_seq(ledger) == (96, 4)  # seq 4 followed the applied position
    reuses = await ledger.store.unsettled_reuses("rolled")
    assert [doc["event"]["id"] for doc in reuses] == [e.id for e in renumbered[:2]]

    adopted = await adopt_reuses(ledger.store, "rolled")
    assert adopted == [(e, None) for e in renumbered[:2]]
    assert await adopt_reuses(ledger.store, "rolled") == []
    assert await balance_and_seq(ledger) == (94, 4)
    redelivered = message(renumbered, receive_count=2)
    assert (await worker.handle([redelivered]))[redelivered.message_id].done
    assert await balance_and_seq(ledger) == (94, 4)
    history = await ledger.store.history("rolled", 10)
    assert sum(1 for entry in history if entry.get("adopted")) == 2


async def test_an_adoption_cut_short_is_finished_once_by_the_next_settle(ledger: Ledger) -> None:
    await ledger.accounts.create("halfway", 10)
    worker = ledger.worker()
    await worker.handle([message([debit_event("halfway", 1)])])
    reused = debit_event("halfway", 1)
    await worker.handle([message([reused])])
    # The account moved but the record was not marked: the adopting settle died there.
    await adopt_reuses(ledger.store, "halfway")
    await ledger.store.reused.update_many({}, {"$set": {"adopted_at": None}})

    assert await adopt_reuses(ledger.store, "halfway") == [(reused, None)]
    assert await balance_and_seq(ledger, "halfway") == (8, 1)


async def test_a_reused_position_found_by_the_journal_write_holds_the_account(
    ledger: Ledger,
) -> None:
    """The first event at seq 2 was journaled by a worker that died before applying it."""
    await ledger.accounts.create("cut", 10)
    worker = ledger.worker()
    await worker.handle([message([debit_event("cut", 1)])])
    lost = debit_event("cut", 2)
    await ledger.store.write_journal([lost], {lost.id: "m-1"}, {})
    renumbered = message([debit_event("cut", 2), debit_event("cut", 3)])

    handled = (await worker.handle([renumbered]))[renumbered.message_id]

    assert (handled.outcome, handled.reason.startswith("reused position for 'cut'")) == (
        Outcome.GAP,
        True,
    )
    assert await balance_and_seq(ledger, "cut") == (9, 1)  # nothing of it applied
    history = {e["event_id"]: e["counted"] for e in await ledger.store.history("cut", 5)}
    assert history[lost.id] is False, "history says the balance does not include it"


async def balance_and_seq(ledger: Ledger, account: str = "rolled") -> tuple[int, int]:
    doc = await ledger.accounts.get(account)
    assert doc is not None
    return doc["balance"], doc["seq"]
