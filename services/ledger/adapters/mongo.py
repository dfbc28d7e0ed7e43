"""The ledger's MongoDB writes: the journal, conditional balance updates, failures.

No multi-document transactions: each account moves with one conditional
single-document update filtered on its current position, so the same code runs on
MongoDB, Atlas, DocumentDB and FerretDB.

Every access is by `_id`, the one index every MongoDB-compatible store keeps: accounts,
failures and credits by their key, the journal by `journal_id` (account, epoch, seq), so
an account's newest entries are one descending `_id` range. Reused positions are keyed
`<journal_id>/<event id>`, inside the same per-account range.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.ledger.domain.apply import AccountUpdate, Position, Voided
from shared.accounting.credits import CreditLog
from shared.accounting.events import CLOSE, ChargeRef, Event, event_from_dict, parse_rfc3339
from shared.store_retry import with_retries
from shared.stores import MongoDoc

DUPLICATE_KEY = 11000
UNKNOWN_REASON = "unknown (arrived without a ledger receive)"
POSITION_FIELDS = {"epoch": 1, "seq": 1, "ended": 1}
HOLDER_FIELDS = {"event_id": 1, "type": 1, "amount": 1, "request_id": 1, "charge": 1}


@dataclass(frozen=True, slots=True)
class Holder:
    """The event the journal holds at a position, as far as telling a repeat needs."""

    event_id: str
    type: str
    amount: int
    request_id: str
    charge: str

    @classmethod
    def of(cls, doc: MongoDoc) -> Holder:
        return cls(
            doc["event_id"], doc["type"], doc["amount"], doc["request_id"], doc.get("charge", "")
        )

    @classmethod
    def of_event(cls, e: Event) -> Holder:
        return cls(e.id, e.type, e.amount, e.request_id, e.charge)

    def is_issued_again(self, event: Event) -> bool:
        """Whether `event` is this one's operation issued again at its own position.

        A credit with the same key and amount, or a refund of the same charge: Redis
        rolled back past the first, and the gateway issued it again under the same
        number. Redis holds the one, MongoDB the other, and they count alike.
        """
        if event.id == self.event_id or (event.type, event.amount) != (self.type, self.amount):
            return False
        if event.type == "credit":
            return event.request_id == self.request_id
        return event.type == "refund" and bool(event.charge) and event.charge == self.charge


class LedgerStore:
    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.db = db
        self.accounts = db["accounts"]
        self.journal = db["ledger"]
        self.failures = db["dlq_reasons"]
        self.dead_letters = db["dead_letters"]
        self.reused = db["reused_positions"]
        self.credits = CreditLog(db)
        self.refund_claims = db["refund_claims"]

    async def positions(self, accounts: list[str]) -> dict[str, Position]:
        return {doc["_id"]: position_of(doc) for doc in await self._each(accounts, POSITION_FIELDS)}

    async def balances(self, accounts: list[str]) -> dict[str, int]:
        docs = await self._each(accounts, {"balance": 1})
        return {doc["_id"]: int(doc["balance"]) for doc in docs}

    async def _each(self, accounts: list[str], fields: dict[str, int]) -> list[MongoDoc]:
        """One lookup by `_id` per account: the form every MongoDB-compatible server indexes."""
        docs = await asyncio.gather(*(self.accounts.find_one({"_id": a}, fields) for a in accounts))
        return [doc for doc in docs if doc]

    async def write_journal(
        self, events: list[Event], message_of: dict[str, str], voided: dict[str, Voided]
    ) -> list[tuple[Event, Holder]]:
        """Append the events to the journal; ones already there (a retry) are ignored.

        Returns the events whose place another event already holds, with that event's id:
        positions Redis gave out twice (see `journaled`).
        """
        docs = [journal_entry(e, message_of[e.id], voided.get(e.id)) for e in events]
        if not docs:
            return []
        try:
            await with_retries(lambda: self.journal.insert_many(docs, ordered=False))
        except BulkWriteError as error:
            failed = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in failed):
                raise
            taken = [events[e["index"]] for e in failed]
            holders = await self.journaled(taken)
            return [
                (e, holders[key])
                for e in taken
                if (key := journal_id(e.account, e.epoch, e.seq)) in holders
                and holders[key].event_id != e.id
            ]
        return []

    async def journal_issued_again(
        self, found: list[tuple[Event, Holder]], message_of: dict[str, str]
    ) -> None:
        """Journal credits and refunds issued again at their own position, counting nothing,
        beside the entry they repeat (see `Holder.is_issued_again`)."""
        docs = [
            journal_entry(e, message_of.get(e.id, ""), Voided(holder.event_id, why))
            | {"_id": reuse_id(e)}
            for e, holder in found
            if (why := f"the same {e.type} issued again at its own position after a rollback")
        ]
        with contextlib.suppress(BulkWriteError):
            await with_retries(lambda: self.journal.insert_many(docs, ordered=False))

    async def journaled(self, events: list[Event]) -> dict[str, Holder]:
        """The event the journal holds at each of these events' positions, where any.

        One `_id` range per account and epoch. An event at or before the applied
        position whose place holds another event id is a reused position: Redis lost
        events it had shipped (a failover to a replica behind) and numbered new ones
        the same. No journal entry means a settle moved the account past the event.
        """
        spans: dict[tuple[str, int], list[int]] = {}
        for e in events:
            spans.setdefault((e.account, e.epoch), []).append(e.seq)

        async def read(account: str, epoch: int, seqs: list[int]) -> list[MongoDoc]:
            bounds = {"$gte": journal_id(account, epoch, min(seqs))}
            bounds["$lte"] = journal_id(account, epoch, max(seqs))
            cursor = self.journal.find({"_id": bounds}, HOLDER_FIELDS)
            return [doc async for doc in cursor]

        pages = await asyncio.gather(*(read(a, e, seqs) for (a, e), seqs in spans.items()))
        return {doc["_id"]: Holder.of(doc) for page in pages for doc in page}

    async def charges_of(
        self, refunds: list[Event]
    ) -> dict[str, tuple[Holder | None, MongoDoc | None]]:
        """Where each refund's charge stands, by refund id: the journal's entry at the
        charge's position, and the charge's reused-position record, where any.

        One lookup by `_id` each, side by side: a `$in` scans the collection on some
        MongoDB-compatible stores.
        """

        async def standing(refund: Event) -> tuple[Holder | None, MongoDoc | None]:
            charge = refund.charge_ref
            assert charge is not None
            entry, record = await asyncio.gather(
                self.journal.find_one(
                    {"_id": journal_id(refund.account, charge.epoch, charge.seq)}, HOLDER_FIELDS
                ),
                self.reused.find_one({"_id": reuse_key(refund.account, charge)}, {"adopted_at": 1}),
            )
            return (Holder.of(entry) if entry else None), record

        found = await asyncio.gather(*(standing(r) for r in refunds))
        return {r.id: answer for r, answer in zip(refunds, found, strict=True)}

    async def claim_refunds(self, refunds: list[Event]) -> dict[str, str]:
        """One refund per charge: the first to claim it wins; repeats map to its id.

        Written before the account moves, like a credit's claim, and a retry finds its
        own claim, so a crash in between never turns a first refund into a repeat.
        """
        repeats = {}
        for event in refunds:
            ref = event.charge_ref
            assert ref is not None
            doc = {"_id": f"{event.account}/{ref.id}", "refund_id": event.id}
            try:
                await with_retries(partial(self.refund_claims.insert_one, doc))
                continue
            except DuplicateKeyError:
                first = await self.refund_claims.find_one({"_id": doc["_id"]})
            if first is not None and first["refund_id"] != event.id:
                repeats[event.id] = str(first["refund_id"])
        return repeats

    async def record_reuses(
        self, found: Sequence[tuple[Event, Holder | None]], message_of: dict[str, str]
    ) -> set[str]:
        """Keep each reused position (or stranded event: no holder) for reconcile and
        settle; the ids settle adopted."""
        now = datetime.now(UTC)

        async def record(event: Event, holder: Holder | None) -> MongoDoc | None:
            return await with_retries(
                lambda: self.reused.find_one_and_update(
                    {"_id": reuse_id(event)},
                    {
                        "$set": {"last_seen": now, "message_id": message_of.get(event.id, "")},
                        "$setOnInsert": {
                            "account": event.account,
                            "event": event.to_dict(),
                            "journaled_event_id": holder.event_id if holder else None,
                            "first_seen": now,
                            "adopted_at": None,
                        },
                    },
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            )

        docs = await asyncio.gather(*(record(e, first) for e, first in found))
        return {doc["event"]["id"] for doc in docs if doc and doc.get("adopted_at")}

    async def unsettled_reuses(self, account: str | None = None) -> list[MongoDoc]:
        """Reused positions not adopted yet: the whole (small) collection, or one account's."""
        query: dict[str, Any] = {"adopted_at": None}
        if account:
            first, past_last = journal_id_range(account)
            query["_id"] = {"$gt": first, "$lt": past_last}
        return [doc async for doc in self.reused.find(query).sort("_id", 1)]

    async def close_after(self, account: str, epoch: int) -> str | None:
        """The id of a close that ended `epoch` of a region's book (a later epoch's first
        event), if any: it took whatever the book held then as spent."""
        first, past_last = journal_id_range(account)
        close = await self.journal.find_one(
            {"_id": {"$gt": first, "$lt": past_last}, "type": CLOSE, "epoch": {"$gt": epoch}},
            {"event_id": 1},
        )
        return str(close["event_id"]) if close else None

    async def adopt(self, account: str, reuse: MongoDoc, voided: Voided | None) -> Event:
        """Count one reused-position event in MongoDB exactly once (or, `voided`, journal
        it counting nothing).

        It is journaled beside the event that holds its position, and its amounts go into
        the account guarded by a per-event mark in the same document, so a settle that
        dies halfway and runs again adopts nothing twice.
        """
        event = event_from_dict(reuse["event"])
        mark = f"adopted.{event.id}"
        entry = journal_entry(event, reuse.get("message_id", ""), voided) | {
            "_id": reuse["_id"],
            "adopted": True,
        }
        with contextlib.suppress(DuplicateKeyError):
            await with_retries(lambda: self.journal.insert_one(entry))
        update = AccountUpdate(account, Position(0, 0), Position(0, 0))
        update.add(event)
        if voided:
            update.void(event, voided)
        now = datetime.now(UTC)
        await with_retries(
            lambda: self.accounts.update_one(
                {"_id": account, mark: {"$exists": False}},
                {"$inc": _increments(update), "$set": {mark: now, "updated_at": now}},
            )
        )
        await with_retries(
            lambda: self.reused.update_one({"_id": reuse["_id"]}, {"$set": {"adopted_at": now}})
        )
        return event

    async def apply(self, updates: list[AccountUpdate]) -> set[str]:
        """Apply the updates; returns the accounts that were no longer where the plan saw them.

        Single-document updates side by side rather than one bulk write: FerretDB runs a
        bulk write's statements several times slower than the same updates sent alone.
        """
        now = datetime.now(UTC)

        async def move(u: AccountUpdate) -> bool:
            where: MongoDoc = {"_id": u.account, "epoch": u.start.epoch, "seq": u.start.seq}
            if u.start_balance is not None:  # a close: it takes the balance it saw
                where["balance"] = u.start_balance
            result = await with_retries(
                lambda: self.accounts.update_one(
                    where,
                    {
                        "$inc": _increments(u),
                        "$set": {
                            "epoch": u.end.epoch,
                            "seq": u.end.seq,
                            "updated_at": now,
                            **{f"ended.{epoch}": seq for epoch, seq in u.epochs_left},
                        },
                    },
                )
            )
            return result.matched_count == 1

        moved = await asyncio.gather(*(move(u) for u in updates))
        return {u.account for u, ok in zip(updates, moved, strict=True) if not ok}

    async def record_failure(
        self,
        message_id: str,
        reason: str,
        receive_count: int,
        summary: dict[str, Any],
        sequence: str = "",
    ) -> None:
        """Why the message waits; with its main queue's sequence number, which places it
        among the others when it is collected from the DLQ (see `index_dead_letter`)."""
        now = datetime.now(UTC)
        await with_retries(
            lambda: self.failures.update_one(
                {"_id": message_id},
                {
                    "$set": {
                        "last_reason": reason,
                        "last_seen": now,
                        "receive_count": receive_count,
                        **summary,
                    },
                    "$setOnInsert": {
                        "first_reason": reason,
                        "first_seen": now,
                        "sequence": sequence,
                    },
                },
                upsert=True,
            )
        )

    async def failure(self, message_id: str) -> MongoDoc | None:
        return await self.failures.find_one({"_id": message_id})

    async def dead_letter_holds(self, account: str, event_id: str) -> bool:
        """Whether an unresolved dead letter of `account` carries the event `event_id` (as
        an event, not as the charge a refund in it names)."""
        carries = f'"id": ?"{re.escape(event_id)}"'
        found = await self.dead_letters.find_one(
            {"resolved_at": None, "accounts": account, "body": {"$regex": carries}},
            {"_id": 1},
        )
        return found is not None

    async def index_dead_letter(
        self,
        message_id: str,
        body: str,
        group_id: str,
        sequence: str,
        about: dict[str, Any],
        receive_count: int,
        collected: bool = False,
    ) -> None:
        """Note a message that is (or is about to be) a dead letter, body and all: the
        index is where dead letters live (see adapters/dlq.py). The reasons are the ones
        the ledger recorded; a message it never received has an unknown reason.

        `collected`: found in the DLQ, which keeps an entry the ledger wrote and never
        brings back one an operator redrove or purged (SQS may move a message to the DLQ
        after that). The DLQ numbers its messages anew, so a collected message is placed
        by the main queue's sequence number its failures recorded, when a ledger received
        it: redrive applies in that order.
        """
        failure = await self.failure(message_id) or {}
        entry = {
            "body": body,
            "group_id": group_id,
            "sequence": failure.get("sequence") or sequence,
            "first_reason": failure.get("first_reason", UNKNOWN_REASON),
            "last_reason": failure.get("last_reason", UNKNOWN_REASON),
            "receive_count": failure.get("receive_count", receive_count),
            "accounts": [],
            "seq_range": None,
            **about,
        }
        new = {"dead_since": datetime.now(UTC), "resolved_at": None}
        if collected:
            change = {"$setOnInsert": entry | new}
        else:
            change = {"$set": entry, "$setOnInsert": new}
        with contextlib.suppress(DuplicateKeyError):  # resolved meanwhile: leave it so
            await with_retries(
                lambda: self.dead_letters.update_one(
                    {"_id": message_id, "resolved_at": None}, change, upsert=True
                )
            )

    async def dead_letter_index(self, bodies: bool = False) -> list[MongoDoc]:
        """Every dead letter, in queue order (by group, then sequence number)."""
        found = self.dead_letters.find({}, None if bodies else {"body": 0})
        docs = [doc async for doc in found if doc.get("resolved_at") is None]
        return sorted(docs, key=lambda d: (d["group_id"], int(d["sequence"] or 0)))

    async def dead_letter_count(self) -> int:
        """Unresolved dead letters, counted by the store (the gauge asks every 5 s)."""
        return await self.dead_letters.count_documents({"resolved_at": None})

    async def dead_letter(self, message_id: str) -> MongoDoc | None:
        doc = await self.dead_letters.find_one({"_id": message_id})
        return doc if doc and doc.get("resolved_at") is None else None

    async def resolve_dead_letters(self, message_ids: list[str], how: str) -> None:
        """Redriven or purged: kept as a resolved entry until SQS could still hold the
        message (its retention, 14 days at most), so collecting never brings it back."""
        if message_ids:
            await with_retries(
                lambda: self.dead_letters.update_many(
                    {"_id": {"$in": message_ids}},
                    {"$set": {"resolved_at": datetime.now(UTC), "resolution": how}},
                )
            )

    async def forget_resolved_dead_letters(self, before: datetime) -> None:
        await self.dead_letters.delete_many({"resolved_at": {"$lt": before}})

    async def journal_settlement(self, account: str, entry: dict[str, Any]) -> None:
        """An operator's settle goes into the account's journal beside its events.

        Its position is (new epoch, 0), which no event takes: newest-first, it shows just
        before the new epoch's first event.
        """
        await self.journal.insert_one(
            {
                "_id": journal_id(account, int(entry["epoch"]), 0),
                "account": account,
                "type": "settle",
                "amount": 0,
                "seq": 0,
                "request_id": "",
                "at": datetime.now(UTC),
                **entry,
            }
        )

    async def history(self, account: str, limit: int, before: str = "") -> list[MongoDoc]:
        """The account's newest `limit` entries (older than the entry `before`, when given):
        one `_id` range, read backwards."""
        first, past_last = journal_id_range(account)
        if before.startswith(first):
            past_last = min(past_last, before)
        cursor = (
            self.journal.find({"_id": {"$gt": first, "$lt": past_last}})
            .sort("_id", DESCENDING)
            .limit(limit)
        )
        entries = [doc async for doc in cursor]
        account_doc = await self.accounts.find_one({"_id": account}, POSITION_FIELDS)
        applied = position_of(account_doc) if account_doc else Position(0, 0)
        return [entry | {"counted": counted(entry, applied)} for entry in entries]


def counted(entry: MongoDoc, applied: Position) -> bool:
    """Whether the account's balance includes a journal entry's event.

    The journal is written just before the account moves, so an entry past the applied
    position is one a worker wrote and stopped before applying (its message comes again
    and applies it, or it was at a position Redis gave out twice); a void entry keeps
    its place but counts nothing. Settle entries change nothing themselves.
    """
    if entry["type"] == "settle" or entry.get("voided_for"):
        return False
    if entry.get("adopted"):
        return True
    return applied.counts(entry["epoch"], entry["seq"])


def position_of(doc: MongoDoc) -> Position:
    """An account's applied position, with the epochs it left (`ended`, keyed by epoch)."""
    ended = sorted((int(epoch), int(seq)) for epoch, seq in doc.get("ended", {}).items())
    return Position(doc["epoch"], doc["seq"], tuple(ended))


def journal_entry(e: Event, message_id: str, voided: Voided | None = None) -> MongoDoc:
    """`voided`: a repeated credit or refund keeps its place but counts nothing."""
    entry: MongoDoc = {
        "_id": journal_id(e.account, e.epoch, e.seq),
        "event_id": e.id,
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
    if e.charge:
        entry["charge"] = e.charge
    if voided:
        entry["voided_for"], entry["void_reason"] = voided.of, voided.reason
    return entry


def journal_id(account: str, epoch: int, seq: int) -> str:
    """An entry's key: its account's entries sort together, in (epoch, seq) order."""
    return f"{account}/{epoch:010d}/{seq:012d}"


def reuse_id(e: Event) -> str:
    """A reused position's key: beside the journal entry that holds the position."""
    return f"{journal_id(e.account, e.epoch, e.seq)}/{e.id}"


def reuse_key(account: str, charge: ChargeRef) -> str:
    """`reuse_id` of a charge a refund names."""
    return f"{journal_id(account, charge.epoch, charge.seq)}/{charge.id}"


def journal_id_range(account: str) -> tuple[str, str]:
    """Bounds strictly around every `journal_id` of the account and of no other.

    `/` is not allowed in account ids and sorts just below `0`, so the account's keys are
    exactly those after `account/` and before `account0`.
    """
    return f"{account}/", f"{account}0"


def _increments(update: AccountUpdate) -> dict[str, int]:
    inc = {
        "balance": update.balance,
        "usage.calls": update.calls,
        "usage.tokens_spent": update.tokens_spent,
    }
    for kind, calls in update.calls_by_kind.items():
        inc[f"usage.by_kind.{kind}"] = calls
    return inc
