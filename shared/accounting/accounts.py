"""The `accounts` collection in MongoDB, the source of truth for balances.

`epoch`/`seq` are the position of the last event the ledger applied; `hydrations`
counts how often Redis was (re)loaded from here and hands out each new epoch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.store_retry import with_retries
from shared.stores import MongoDoc


class AccountExists(Exception):
    pass


# `<account>#<region>`: an account's book in a region (shared/accounting/regions.py);
# `#` is outside the account id alphabet, so no token names a book.
BOOK_SEPARATOR = "#"


def is_book(account: str) -> bool:
    return BOOK_SEPARATOR in account


@dataclass(frozen=True, slots=True)
class Hydration:
    """What Redis loads: the balance and usage, and the applied position they include."""

    balance: int
    epoch: int
    calls: int
    tokens_spent: int
    applied_epoch: int
    applied_seq: int

    def script_args(self) -> list[int]:
        """In the order hydrate.lua and settle.lua take them."""
        return [
            self.balance,
            self.epoch,
            self.calls,
            self.tokens_spent,
            self.applied_epoch,
            self.applied_seq,
        ]


def empty_usage() -> dict[str, Any]:
    return {"calls": 0, "tokens_spent": 0, "by_kind": {}}


def new_account(account: str, tokens: int) -> MongoDoc:
    """An account as created: no event applied yet, never hydrated."""
    now = datetime.now(UTC)
    return {
        "_id": account,
        "balance": tokens,
        "epoch": 0,
        "seq": 0,
        "hydrations": 0,
        "usage": empty_usage(),
        "created_at": now,
        "updated_at": now,
    }


class AccountStore:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.accounts = db["accounts"]

    async def create(self, account: str, tokens: int) -> None:
        doc = new_account(account, tokens)
        try:
            await with_retries(lambda: self.accounts.insert_one(doc))
        except DuplicateKeyError:
            raise AccountExists(account) from None

    async def get(self, account: str) -> MongoDoc | None:
        return await self.accounts.find_one({"_id": account})

    async def starting_with(self, prefix: str, after: str, limit: int) -> list[MongoDoc]:
        """Accounts whose id starts with `prefix`, in id order, after `after` (a page)."""
        # `~` sorts after every character of the account id alphabet.
        bounds: dict[str, str] = {"$gte": prefix, "$lt": prefix + "~"}
        if after:
            bounds["$gt"] = after
        cursor = self.accounts.find({"_id": bounds}).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    async def count(self) -> int:
        """About how many accounts there are (the collection's metadata: no scan)."""
        return await self.accounts.estimated_document_count()

    async def pages(self, size: int) -> AsyncIterator[list[MongoDoc]]:
        """Every account, `size` at a time in `_id` order (`{_id: {$gt: last}}`: the one
        range every MongoDB-compatible server serves from its primary index)."""
        last: str | None = None
        while True:
            query = {} if last is None else {"_id": {"$gt": last}}
            docs = [doc async for doc in self.accounts.find(query).sort("_id", 1).limit(size)]
            if not docs:
                return
            yield docs
            last = docs[-1]["_id"]

    async def next_epoch(self, account: str) -> Hydration | None:
        """Claim a fresh epoch for a (re)hydration of Redis, with the balance to load."""
        doc = await with_retries(
            lambda: self.accounts.find_one_and_update(
                {"_id": account},
                {"$inc": {"hydrations": 1}},
                return_document=ReturnDocument.AFTER,
            )
        )
        if doc is None:
            return None
        usage = doc.get("usage", {})
        return Hydration(
            balance=int(doc["balance"]),
            epoch=int(doc["hydrations"]),
            calls=int(usage.get("calls", 0)),
            tokens_spent=int(usage.get("tokens_spent", 0)),
            applied_epoch=int(doc["epoch"]),
            applied_seq=int(doc["seq"]),
        )
