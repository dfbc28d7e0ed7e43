"""Two ledger workers sharing one queue: each one's remembered positions go stale."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Outcome
from services.ledger.handler import MessageHandler, Received
from shared.accounts import AccountStore
from shared.events import Batch
from shared.stores import MongoDoc
from tests.stack import debit_event


def message(account: str, seqs: range) -> Received:
    body = Batch(0, [debit_event(account, n) for n in seqs]).encode()
    return Received(uuid.uuid4().hex, body, receive_count=1, group_id="s0", sequence="1")


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[LedgerStore]:
    client: AsyncMongoClient[MongoDoc] = AsyncMongoClient(mongo_url)
    db = client[f"replicas_{uuid.uuid4().hex[:8]}"]
    await AccountStore(db).create("shared", 100)
    yield LedgerStore(db)
    await client.drop_database(db.name)
    await client.close()


async def test_a_worker_whose_position_is_stale_applies_what_mongodb_says_is_next(
    store: LedgerStore,
) -> None:
    w1, w2 = MessageHandler(store, max_receive_count=3), MessageHandler(store, 3)
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
    store: LedgerStore,
) -> None:
    w1, w2 = MessageHandler(store, max_receive_count=3), MessageHandler(store, 3)
    first, second = message("shared", range(1, 4)), message("shared", range(4, 7))
    await w1.handle([first])
    await w2.handle([second])

    handled = (await w1.handle([second]))[second.message_id]  # redelivered to the stale one

    assert handled.outcome is Outcome.DUPLICATE
    account = await store.accounts.find_one({"_id": "shared"})
    assert account is not None
    assert (account["seq"], account["balance"]) == (6, 94)
