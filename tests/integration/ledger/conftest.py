"""A ledger's store on a database of its own, and the live balances it corrects."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.ledger.adapters.mongo import LedgerStore
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import TokenBank
from shared.keys import Keys
from shared.settings import Settings
from shared.stores import mongo_client, redis_client
from tests.ledger_harness import Ledger


@pytest.fixture
async def ledger(mongo_url: str, redis_url: str) -> AsyncIterator[Ledger]:
    """A fresh database; tests name their accounts apart in the session's Redis."""
    settings = Settings(mongo_url=mongo_url, redis_url=redis_url)
    mongo, redis = mongo_client(settings), redis_client(settings)
    db = mongo[f"ledger_{uuid.uuid4().hex[:8]}"]
    accounts = AccountStore(db)
    yield Ledger(LedgerStore(db), accounts, TokenBank(redis, Keys(8), accounts, 60))
    await mongo.drop_database(db.name)
    await mongo.close()
    await redis.aclose()
