"""A close of a region's book (its Redis was lost, docs/multi-region.md) through the
ledger worker on MongoDB: it takes what the book holds after the lost Redis's shipped
debits, once, and an event of the closed epoch that comes later counts nothing."""

from __future__ import annotations

import dataclasses

from services.ledger.domain.apply import Outcome
from services.ledger.usecases.settle import adopt_reuses
from shared.accounting.accounts import new_account
from shared.accounting.events import Event, EventType
from tests.ledger_harness import Ledger, message
from tests.stack import debit_event

BOOK = "closing#eu"


async def test_a_close_takes_the_books_balance_once_and_a_late_event_of_its_epoch_nothing(
    ledger: Ledger,
) -> None:
    await ledger.accounts.accounts.insert_one(new_account(BOOK, 20))
    worker = ledger.worker()
    shipped = [debit_event(BOOK, seq) for seq in (1, 2)]
    assert (await worker.handle([message(shipped)])).popitem()[1].outcome is Outcome.APPLIED
    close = event(BOOK, 2, 1, "close", 0)
    credit = event(BOOK, 2, 2, "credit", 5)
    closing = message([close, credit])
    assert (await worker.handle([closing]))[closing.message_id].outcome is Outcome.APPLIED
    assert await balance(ledger) == 5
    entry = await ledger.store.journal.find_one({"event_id": close.id})
    assert entry is not None
    assert entry["amount"] == 18, "the close took what the book held, as spent"

    again = message([close, credit], receive_count=2)
    assert (await worker.handle([again]))[again.message_id].outcome is Outcome.DUPLICATE
    late = debit_event(BOOK, 3)  # of the closed epoch, redriven after the close
    await worker.handle([message([late])])
    ((adopted, voided),) = await adopt_reuses(ledger.store, BOOK)
    assert adopted == late
    assert voided is not None
    assert voided.of == close.id
    assert await balance(ledger) == 5


def event(account: str, epoch: int, seq: int, kind: EventType, amount: int) -> Event:
    return dataclasses.replace(
        debit_event(account, seq, epoch), type=kind, amount=amount, reason=f"{kind}:test"
    )


async def balance(ledger: Ledger) -> int:
    doc = await ledger.accounts.get(BOOK)
    assert doc is not None
    return int(doc["balance"])
