"""The answer to every credit, kept in MongoDB by account and idempotency key.

Redis already makes a key's repeats idempotent; this copy outlives Redis, so a
billing retry after Redis lost its data gets the first answer instead of a second
credit. The ledger also claims each (account, key) for the first credit event it
applies (`credit_claims`): a first answer that never got recorded (a 503, a gateway
that died) is then still found, and a repeat that got through anyway is voided.
Both records' `_id` is `<account>/<key>`: `/` is in neither alphabet, so no account
and key can spell another pair's id, and a string `_id` is what every store's `_id`
index serves.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.accounting.events import Event
from shared.store_retry import with_retries
from shared.stores import MongoDoc


@dataclass(frozen=True, slots=True)
class FirstCredit:
    """The credit that holds an (account, key) claim, and its position (0 0: a claim kept
    before positions were)."""

    event_id: str
    epoch: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class FirstAnswer:
    """What a key's first credit answered, and where the credit sits in Redis's numbering
    (0 0 when unknown), so a retry can tell whether Redis still holds it."""

    fingerprint: str
    event_id: str
    tokens: int
    epoch: int = 0
    seq: int = 0


def record_id(account: str, key: str) -> str:
    return f"{account}/{key}"


def fingerprint(amount: int, reason: str) -> str:
    """What a repeat must match to get the first answer rather than a conflict."""
    return hashlib.sha256(orjson.dumps({"amount": amount, "reason": reason})).hexdigest()


class CreditLog:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.credits = db["credits"]
        self.claims = db["credit_claims"]

    async def first_answer(self, account: str, key: str) -> MongoDoc | None:
        """The recorded answer; else the ledger's claim, whose `tokens` is unknown (None)."""
        answer = await self.credits.find_one({"_id": record_id(account, key)})
        if answer is None:
            claim = await self.claims.find_one({"_id": record_id(account, key)})
            if claim is not None:
                answer = {
                    "fingerprint": claim["fingerprint"],
                    "event_id": claim["event_id"],
                    "tokens": None,
                    "epoch": claim.get("epoch", 0),
                    "seq": claim.get("seq", 0),
                }
        return answer

    async def of_account(self, account: str, limit: int) -> list[MongoDoc]:
        """The account's recorded credits by idempotency key (its `_id` range), newest first."""
        first, past_last = record_id(account, ""), f"{account}0"  # `0` sorts right after `/`
        cursor = (
            self.credits.find({"_id": {"$gte": first, "$lt": past_last}})
            .sort("at", DESCENDING)
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def claim(self, credits: list[Event]) -> dict[str, FirstCredit]:
        """First credit per (account, idempotency key) wins; repeats map to the first.

        The claim is written before the ledger moves the account, and a retry finds its
        own claim, so a crash in between never turns a first credit into a repeat. Claims
        go one at a time, in sequence order: a first and its repeat may share one batch.
        (Another worker cannot hold a later credit of the account before this one is
        applied.)
        """
        firsts = {}
        for event in credits:
            if first := await self._claim(event):
                firsts[event.id] = first
        return firsts

    async def _claim(self, event: Event) -> FirstCredit | None:
        """None if this event holds the claim, else the event that does."""
        doc = {
            "_id": record_id(event.account, event.request_id),
            "event_id": event.id,
            "fingerprint": fingerprint(event.amount, event.reason),
            "epoch": event.epoch,
            "seq": event.seq,
            "at": datetime.now(UTC),
        }
        try:
            await with_retries(lambda: self.claims.insert_one(doc))
            return None
        except DuplicateKeyError:
            first = await self.claims.find_one({"_id": doc["_id"]})
        if first is None or first["event_id"] == event.id:
            return None
        return FirstCredit(str(first["event_id"]), first.get("epoch", 0), first.get("seq", 0))

    async def record(self, account: str, key: str, answer: FirstAnswer) -> None:
        # A concurrent repeat may have recorded the same first answer already.
        doc = {"_id": record_id(account, key), **asdict(answer), "at": datetime.now(UTC)}
        with contextlib.suppress(DuplicateKeyError):
            await with_retries(lambda: self.credits.insert_one(doc))
