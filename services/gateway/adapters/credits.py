"""The answer to every credit, kept in MongoDB by account and idempotency key.

Redis already makes a key's repeats idempotent; this copy outlives Redis, so a
billing retry after Redis lost its data gets the first answer instead of a second
credit. The record's `_id` is `<account>/<key>`: `/` is in neither alphabet, so no
account and key can spell another pair's id, and a string `_id` is what every store's
`_id` index serves.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.store_retry import with_retries
from shared.stores import MongoDoc


def record_id(account: str, key: str) -> str:
    return f"{account}/{key}"


class CreditLog:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.credits = db["credits"]

    async def first_answer(self, account: str, key: str) -> MongoDoc | None:
        return await self.credits.find_one({"_id": record_id(account, key)})

    async def record(
        self, account: str, key: str, fingerprint: str, event_id: str, tokens: int
    ) -> None:
        # A concurrent repeat may have recorded the same first answer already.
        doc = {
            "_id": record_id(account, key),
            "fingerprint": fingerprint,
            "event_id": event_id,
            "tokens": tokens,
            "at": datetime.now(UTC),
        }
        with contextlib.suppress(DuplicateKeyError):
            await with_retries(lambda: self.credits.insert_one(doc))
