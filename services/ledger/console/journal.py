"""The operators' journal: every redrive, purge and settle from the console, with who
and why, in MongoDB beside the ledger.

Keys are time-ordered strings, so the newest entries are one descending `_id` range.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.stores import MongoDoc


class OperatorJournal:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.entries = db["operator_journal"]

    async def record(
        self, by: str, action: str, target: str, reason: str, outcome: dict[str, Any]
    ) -> str:
        now = datetime.now(UTC)
        entry_id = f"{now:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:8]}"
        await self.entries.insert_one(
            {
                "_id": entry_id,
                "at": now,
                "by": by,
                "action": action,
                "target": target,
                "reason": reason,
                **outcome,
            }
        )
        return entry_id

    async def recent(self, limit: int = 20) -> list[MongoDoc]:
        cursor = self.entries.find().sort("_id", DESCENDING).limit(limit)
        return [doc async for doc in cursor]
