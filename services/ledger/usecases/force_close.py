"""Force-close a region gone for good: what its books hold goes back to the pools.

A region whose Redis and queue are lost for good holds, in its books as MongoDB last
knew them, tokens no region can spend any more. The operator gives them back to each
account's pool. This is the one overdraw the design allows, and its bound: what the dead
region had spent and never shipped is spent again elsewhere, at most its slices
(docs/multi-region.md). A region that was not dead after all finds its books emptied;
its later events take them below zero, which reconcile reports.

Each book is emptied in one conditional update that records the close on it, then its
pool takes the tokens once per close (the pool keeps the last close it took per region),
so a command cut short and run again moves nothing twice.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.accounting.accounts import BOOK_SEPARATOR
from shared.accounting.regions import REGION, account_of
from shared.store_retry import with_retries
from shared.stores import MongoDoc


@dataclass(frozen=True, slots=True)
class Returned:
    account: str
    tokens: int


async def force_close(
    db: AsyncDatabase[MongoDoc], region: str, reason: str, by: str
) -> list[Returned]:
    """Give every book of `region` back to its pool; the tokens each pool took now."""
    if not REGION.fullmatch(region):
        raise ValueError(f"region {region!r}: 1-32 of a-z, 0-9 and -")
    accounts = db["accounts"]
    books = accounts.find({"_id": {"$regex": f"{re.escape(BOOK_SEPARATOR + region)}$"}})
    returned = []
    async for book in books:
        close = await _empty(db, book, reason, by)
        account = account_of(book["_id"])
        if close is not None and await _to_pool(db, account, region, close):
            returned.append(Returned(account, close["tokens"]))
    return returned


async def _to_pool(db: AsyncDatabase[MongoDoc], account: str, region: str, close: MongoDoc) -> bool:
    """The pool takes a book's close once; whether it took it now."""
    taken = await with_retries(
        lambda: db["accounts"].update_one(
            {"_id": account, f"force_closed.{region}": {"$ne": close["id"]}},
            {
                "$inc": {"balance": close["tokens"]},
                "$set": {f"force_closed.{region}": close["id"], "updated_at": close["at"]},
            },
        )
    )
    return bool(taken.modified_count) and close["tokens"] > 0


async def _empty(
    db: AsyncDatabase[MongoDoc], book: MongoDoc, reason: str, by: str
) -> MongoDoc | None:
    """Empty the book, recording the close on it; the book's last close (perhaps one a
    run cut short left for its pool), or None if it never held tokens to give back."""
    balance = int(book["balance"])
    if balance <= 0:
        return book.get("force_closed")
    close = {"id": uuid.uuid4().hex, "tokens": balance, "at": datetime.now(UTC),
             "reason": reason, "by": by}  # fmt: skip
    emptied = await with_retries(
        lambda: db["accounts"].update_one(
            {"_id": book["_id"], "balance": balance},
            {"$inc": {"balance": -balance}, "$set": {"force_closed": close}},
        )
    )
    if not emptied.modified_count:
        raise RuntimeError(
            f"{book['_id']!r} changed while being closed: is region still applying events?"
        )
    return close
