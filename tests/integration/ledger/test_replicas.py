"""Two ledger workers sharing one queue: each one's remembered positions go stale."""

from __future__ import annotations

import pytest

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Outcome
from services.ledger.domain.messages import Received
from tests.ledger_harness import Ledger
from tests.ledger_harness import message as packed
from tests.stack import debit_event


def message(account: str, seqs: range) -> Received:
    return packed([debit_event(account, n) for n in seqs])


@pytest.fixture
async def store(ledger: Ledger) -> LedgerStore:
    await ledger.accounts.create("shared", 100)
    return ledger.store


async def test_a_worker_whose_position_is_stale_applies_what_mongodb_says_is_next(
    store: LedgerStore, ledger: Ledger
) -> None:
    w1, w2 = ledger.worker(), ledger.worker()
    first, second, third = (message("shared", range(n, n + 3)) for n in (1, 4, 7))

    assert (await w1.handle([first]))[first.message_id].outcome is Outcome.APPLIED
    assert (await w2.handle([second]))[second.message_id].outcome is Outcome.APPLIED
    handled = (await w1.handle([third]))[third.message_id]

    assert handled.outcome is Outcome.APPLIED, handled.reason
    account = await store.accounts.find_one({"_id": "shared"})
    assert account is not None
    assert (account["seq"], account["balance"]) == (9, 91)
    assert await store.failures.count_documents({}) == 0


async def test_a_duplicate_behind_a_stale_position_is_skipped_not_applied_twice(
    store: LedgerStore, ledger: Ledger
) -> None:
    w1, w2 = ledger.worker(), ledger.worker()
    first, second = message("shared", range(1, 4)), message("shared", range(4, 7))
    await w1.handle([first])
    await w2.handle([second])

    handled = (await w1.handle([second]))[second.message_id]  # redelivered to the stale one

    assert handled.outcome is Outcome.DUPLICATE
    account = await store.accounts.find_one({"_id": "shared"})
    assert account is not None
    assert (account["seq"], account["balance"]) == (6, 94)
