"""The ledger's MongoDB writes: the journal, conditional balance updates, failures.

No multi-document transactions: each account moves with one conditional
single-document update filtered on its current position, so the same code runs on
MongoDB, Atlas, DocumentDB and FerretDB.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.ledger.domain.apply import AccountUpdate, Position
from shared.events import Event, parse_rfc3339
from shared.stores import MongoDoc

DUPLICATE_KEY = 11000


class LedgerStore:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.db = db
        self.accounts = db["accounts"]
        self.journal = db["ledger"]
        self.failures = db["dlq_reasons"]

    async def ensure_indexes(self) -> None:
        await self.journal.create_index(
            [("account", ASCENDING), ("epoch", ASCENDING), ("seq", ASCENDING)],
            name="account_epoch_seq",
        )

    async def positions(self, accounts: list[str]) -> dict[str, Position]:
        cursor = self.accounts.find({"_id": {"$in": accounts}}, {"epoch": 1, "seq": 1})
        return {doc["_id"]: Position(doc["epoch"], doc["seq"]) async for doc in cursor}

    async def write_journal(self, events: list[Event], message_id: str) -> None:
        """Append the events to the journal; ones already there (a retry) are ignored."""
        docs = [
            {
                "_id": e.id,
                "account": e.account,
                "type": e.type,
                "amount": e.amount,
                "epoch": e.epoch,
                "seq": e.seq,
                "reason": e.reason,
                "request_id": e.request_id,
                "at": parse_rfc3339(e.at),
                "message_id": message_id,
            }
            for e in events
        ]
        try:
            await self.journal.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise

    async def apply(self, updates: list[AccountUpdate]) -> int:
        """Apply the updates; returns how many accounts were still where the plan saw them."""
        now = datetime.now(UTC)
        ops = [
            UpdateOne(
                {"_id": u.account, "epoch": u.start.epoch, "seq": u.start.seq},
                {
                    "$inc": _increments(u),
                    "$set": {"epoch": u.end.epoch, "seq": u.end.seq, "updated_at": now},
                },
            )
            for u in updates
        ]
        result = await self.accounts.bulk_write(ops, ordered=False)
        return result.matched_count

    async def record_failure(
        self, message_id: str, reason: str, receive_count: int, summary: dict[str, Any]
    ) -> None:
        now = datetime.now(UTC)
        await self.failures.update_one(
            {"_id": message_id},
            {
                "$set": {
                    "last_reason": reason,
                    "last_seen": now,
                    "receive_count": receive_count,
                    **summary,
                },
                "$setOnInsert": {"first_reason": reason, "first_seen": now},
            },
            upsert=True,
        )

    async def failure(self, message_id: str) -> MongoDoc | None:
        return await self.failures.find_one({"_id": message_id})

    async def history(self, account: str, limit: int) -> list[MongoDoc]:
        cursor = (
            self.journal.find({"account": account})
            .sort([("epoch", DESCENDING), ("seq", DESCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]


def _increments(update: AccountUpdate) -> dict[str, int]:
    inc = {
        "balance": update.balance,
        "usage.calls": update.calls,
        "usage.tokens_spent": update.tokens_spent,
    }
    for kind, calls in update.calls_by_kind.items():
        inc[f"usage.by_kind.{kind}"] = calls
    return inc
