"""Regional token slices in MongoDB: an account's books and the broker that fills them.

With a region set (`MAAS_REGION`), a gateway charges the account's *book* in its region,
`<account>#<region>`: an account document of its own, whose balance is the region's
slice as the ledger knows it, live in the region's Redis like any account, charged,
refunded and numbered by the scripts and the ledger exactly as an account is. `#` is
outside the account id alphabet, so no client names a book, and a book's events carry
its region and are numbered per (account, region) without a field of their own.

The account's own document keeps the tokens granted to no region (its pool): the
account holds its pool plus the balances of its books. A grant moves tokens from the
pool to a book in two steps: one conditional update takes them out of the pool
(`balance >= g`, so all the books together never hold more than the account was
funded: no overspend, whatever the network does) and records the grant's number; then
the region credits its book with the grant's number as the idempotency key, once, as
any credit (the ledger voids a repeat of a key). Between the two, the tokens are in
neither place: the books are short, never over.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from shared.accounting.accounts import BOOK_SEPARATOR, new_account
from shared.accounting.bank import UnknownAccount
from shared.accounting.credits import record_id
from shared.accounting.events import Event
from shared.accounting.slices import GrantPolicy, grant
from shared.store_retry import with_retries
from shared.stores import MongoDoc

log = logging.getLogger(__name__)

REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Reads and conditional updates a grant tries before it gives up for this time: each
# failed update is another region's grant or a credit that moved the pool meanwhile.
GRANT_ATTEMPTS = 5
ASKING_WITHIN_S = 2.0  # a region granted tokens this recently shares what is scarce


def book_of(account: str, region: str) -> str:
    return f"{account}{BOOK_SEPARATOR}{region}"


def account_of(book: str) -> str:
    return book.partition(BOOK_SEPARATOR)[0]


def book_region(book: str) -> str:
    return book.partition(BOOK_SEPARATOR)[2]


def books_range(account: str) -> dict[str, str]:
    """The `_id` bounds of every book of `account` (`~` sorts after the region alphabet)."""
    return {"$gt": f"{account}{BOOK_SEPARATOR}", "$lt": f"{account}{BOOK_SEPARATOR}~"}


@dataclass(frozen=True, slots=True)
class Grant:
    number: int  # the region's grant number, and its book credit's idempotency key
    tokens: int
    pool: int  # what the pool held after it

    @property
    def key(self) -> str:
        return grant_key(self.number)


@dataclass(slots=True)
class Elsewhere:
    tokens: int
    calls: int = 0
    tokens_spent: int = 0


def grant_key(number: int) -> str:
    return f"grant-{number}"


class Broker:
    """Grants out of an account's pool, one conditional single-document update each."""

    def __init__(self, db: AsyncDatabase[MongoDoc], region: str, policy: GrantPolicy) -> None:
        if not REGION.fullmatch(region):
            raise ValueError(f"region {region!r}: 1-32 of a-z, 0-9 and -")
        self.accounts = db["accounts"]
        self.region = region
        self.policy = policy
        self._grant_field = f"grants.{region}"

    def book(self, account: str) -> str:
        return book_of(account, self.region)

    async def open_book(self, account: str) -> None:
        """Create the account's book in this region (empty) if it has none yet."""
        if await self.accounts.find_one({"_id": account}, {"_id": 1}) is None:
            raise UnknownAccount(account)
        book = new_account(self.book(account), 0)
        with contextlib.suppress(DuplicateKeyError):
            await with_retries(lambda: self.accounts.insert_one(book))

    async def last_grant(self, account: str) -> Grant:
        """The region's last grant of this account (number 0: none yet)."""
        doc = await self._pool(account)
        return self._last(doc)

    async def grant(self, account: str, number: int, asked: int, urgent: bool) -> Grant | None:
        """Grant `number` to this region: at most `asked` tokens out of the pool, sized by
        the policy (`shared/accounting/slices.py`). Asked again with the same number (a
        lost answer, another gateway of the region), it answers the same grant. None:
        the region's grants went past `number` meanwhile (ask the last one again).
        A grant of nothing takes no number."""
        pool = -1
        for _ in range(GRANT_ATTEMPTS):
            doc = await self._pool(account)
            pool = int(doc["balance"])
            last = self._last(doc)
            if last.number == number:
                return last
            if last.number != number - 1:
                return None
            tokens = grant(self.policy, asked, pool, self._asking(doc), urgent)
            if tokens <= 0:
                return Grant(number, 0, pool)
            moved = await with_retries(self._take(account, number, last.number, tokens))
            if moved.modified_count:
                return Grant(number, tokens, pool - tokens)
        return Grant(number, 0, pool)

    def _take(
        self, account: str, number: int, previous: int, tokens: int
    ) -> Callable[[], Awaitable[UpdateResult]]:
        """The conditional update of grant `number`: the pool holds the tokens, and the
        region's last grant is still `previous`."""
        last: object = previous if previous else {"$exists": False}
        match = {"_id": account, "balance": {"$gte": tokens}, f"{self._grant_field}.n": last}
        change = {
            "$inc": {"balance": -tokens},
            "$set": {
                self._grant_field: {"n": number, "tokens": tokens, "at": datetime.now(UTC)},
                "updated_at": datetime.now(UTC),
            },
        }
        return lambda: self.accounts.update_one(match, change)

    async def elsewhere(self, account: str) -> Elsewhere:
        """What the account holds and spent outside this region: its pool and the other
        regions' books, as MongoDB knows them (a book's live slice may be lower)."""
        pool = await self._pool(account)
        found = Elsewhere(int(pool["balance"]))
        others = self.accounts.find({"_id": books_range(account)}, {"balance": 1, "usage": 1})
        async for doc in others:
            if doc["_id"] != self.book(account):
                usage = doc.get("usage", {})
                found.tokens += max(0, int(doc["balance"]))
                found.calls += int(usage.get("calls", 0))
                found.tokens_spent += int(usage.get("tokens_spent", 0))
        return found

    async def books(self, account: str) -> dict[str, int]:
        """Each region's book of the account: its balance as MongoDB knows it."""
        found = self.accounts.find({"_id": books_range(account)}, {"balance": 1})
        return {book_region(doc["_id"]): int(doc["balance"]) async for doc in found}

    async def key_owner(self, account: str, key: str) -> str:
        """The region whose book takes the account's credit under this idempotency key:
        the first region to ask (one insert), so a billing retry sent to another region
        finds that one's answer instead of crediting again."""
        owners = self.accounts.database["credit_regions"]
        claim = {"_id": record_id(account, key), "region": self.region, "at": datetime.now(UTC)}
        try:
            await with_retries(lambda: owners.insert_one(claim))
            return self.region
        except DuplicateKeyError:
            found = await owners.find_one({"_id": claim["_id"]})
        return str(found["region"]) if found else self.region

    async def starve(self, account: str) -> None:
        """Tell the other regions this one waits for the account's tokens they hold."""
        now = datetime.now(UTC)
        await with_retries(
            lambda: self.accounts.database["starving"].update_one(
                {"_id": account},
                {"$set": {f"regions.{self.region}": now, "at": now}},
                upsert=True,
            )
        )

    async def starving(self, within_s: float) -> list[str]:
        """Accounts another region waited for within `within_s`; older hints are dropped."""
        hints = self.accounts.database["starving"]
        since = datetime.now(UTC) - timedelta(seconds=within_s)
        await hints.delete_many({"at": {"$lt": since - timedelta(seconds=within_s)}})
        found = []
        async for doc in hints.find({"at": {"$gte": since}}):
            waiting = doc.get("regions", {})
            if any(at >= since for region, at in waiting.items() if region != self.region):
                found.append(str(doc["_id"]))
        return found

    async def _pool(self, account: str) -> MongoDoc:
        doc = await self.accounts.find_one({"_id": account}, {"balance": 1, "grants": 1})
        if doc is None:
            raise UnknownAccount(account)
        return doc

    def _asking(self, doc: MongoDoc) -> int:
        """The regions asking for the account's tokens now: this one, and the others
        granted some within `ASKING_WITHIN_S` (so when tokens are scarce each gets a
        fair share, not the first asker all of them)."""
        since = datetime.now(UTC) - timedelta(seconds=ASKING_WITHIN_S)
        others = doc.get("grants", {}).items()
        return 1 + sum(1 for r, g in others if r != self.region and g.get("at", since) > since)

    def _last(self, doc: MongoDoc) -> Grant:
        last = doc.get("grants", {}).get(self.region, {})
        return Grant(int(last.get("n", 0)), int(last.get("tokens", 0)), int(doc["balance"]))


class Pools:
    """The ledger's side of a return: the tokens a region gave back reach the pool once.

    The book's update and the pool's are two documents. The ledger moves the pool after
    the book, and again for a return it finds already applied (a redelivery after a
    crash in between), so each pool keeps, per region, the book position of the last
    return it took: one conditional update, and a return at or before it is not counted
    twice. (A return stranded by a lost Redis and adopted by settle after a later one is
    not counted: the account loses it, the books never hold more than was funded.)
    """

    def __init__(self, db: AsyncDatabase[MongoDoc]) -> None:
        self.accounts = db["accounts"]

    async def take_back(self, returns: list[Event]) -> int:
        """Move each return's tokens to its account's pool; how many moved now."""
        moved = 0
        for event in returns:
            account, _, region = event.account.partition(BOOK_SEPARATOR)
            if not REGION.fullmatch(region):
                log.warning("a return of no region's book", extra={"account": event.account})
                continue
            field = f"returned.{region}"
            match = {
                "_id": account,
                "$or": [
                    {field: {"$exists": False}},
                    {f"{field}.e": {"$lt": event.epoch}},
                    {f"{field}.e": event.epoch, f"{field}.s": {"$lt": event.seq}},
                ],
            }
            change = {
                "$inc": {"balance": event.amount},
                "$set": {
                    field: {"e": event.epoch, "s": event.seq},
                    "updated_at": datetime.now(UTC),
                },
            }
            result = await with_retries(partial(self.accounts.update_one, match, change))
            moved += result.modified_count
        return moved
