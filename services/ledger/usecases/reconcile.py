"""Gather what reconciliation compares: Redis, MongoDB, the outbox and the queue.

Every account is compared, a page at a time in `_id` order (`{_id: {$gt: last}}`,
the one range every MongoDB-compatible server serves from its primary index), and
the outbox streams are read in bounded pages too, so memory stays flat however many
accounts and entries there are. The report keeps the accounts that are not ok.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.reconcile import BalanceAt, Row, Status, compare
from shared.accounting.accounts import AccountStore
from shared.accounting.events import event_from_stream_entry, signed_amount
from shared.accounting.regions import book_of, book_region
from shared.accounting.shapes import AccountField
from shared.keys import Keys
from shared.sqs import SQSClient
from shared.stores import MongoDoc, Redis

OUTBOX_PAGE = 1_000
POSITION_FIELDS = [AccountField.BALANCE, AccountField.EPOCH, AccountField.SEQ]


@dataclass(slots=True)
class Report:
    rows: list[Row]
    queue_messages: int
    outbox_events: int
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def idle(self) -> bool:
        return self.queue_messages == 0 and self.outbox_events == 0

    @property
    def drifting(self) -> list[Row]:
        return [row for row in self.rows if row.status.drifts]

    @property
    def drift_tokens(self) -> int:
        return sum(abs(row.drift) for row in self.drifting)


@dataclass(slots=True)
class HeldEvents:
    """An account's events the ledger holds for settle: at reused positions, or stranded."""

    reused: list[str] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)
    stranded_tokens: int = 0

    @property
    def verdict_args(self) -> tuple[tuple[str, ...], tuple[str, ...], int]:
        return tuple(self.reused), tuple(self.stranded), self.stranded_tokens


async def held_for_settle(store: LedgerStore, account: str | None) -> dict[str, HeldEvents]:
    held: defaultdict[str, HeldEvents] = defaultdict(HeldEvents)
    for doc in await store.unsettled_reuses(account):
        events = held[doc["account"]]
        if doc.get("journaled_event_id") is None:
            events.stranded.append(doc["event"]["id"])
            events.stranded_tokens += signed_amount(doc["event"]["type"], doc["event"]["amount"])
        else:
            events.reused.append(doc["event"]["id"])
    return held


def nothing_coming(
    account: str, queue: int, outbox: Counter[str], dead: dict[str, list[str]]
) -> bool:
    """Whether none of the account's events can still be on their way to MongoDB: none in
    the outbox and the queue empty, or one of its messages a dead letter (its later
    events gap behind it until it is redriven)."""
    return bool(dead.get(account)) or (queue == 0 and account not in outbox)


class Reconciler:
    def __init__(
        self,
        redis: Redis,
        db: AsyncDatabase[MongoDoc],
        sqs: SQSClient,
        queue_url: str,
        keys: Keys,
        region: str = "",
    ) -> None:
        """With a `region`, only its books are compared: the accounts' pools and the other
        regions' books are not in this region's Redis (docs/multi-region.md)."""
        self.redis = redis
        self.region = region
        self.accounts = AccountStore(db)
        self.store = LedgerStore(db)
        self.sqs = sqs
        self.queue_url = queue_url
        self.keys = keys

    async def run(
        self,
        account: str | None = None,
        page_size: int = 1_000,
        progress: Callable[[int], object] | None = None,
    ) -> Report:
        """Compare every account (or one); rows for all that are not ok, or for `account`.

        `progress` hears how many more accounts were compared, page after page.
        """
        if account and self.region and not book_region(account):
            account = book_of(account, self.region)
        queue = await self._queue_messages()
        outbox, outbox_events = await self._outbox()
        report = Report([], queue, outbox_events)
        held = await held_for_settle(self.store, account)
        dead = await self._dead_letters_by_account()
        async for all_docs in self._pages(account, page_size):
            docs = [d for d in all_docs if not self.region or book_region(d["_id"]) == self.region]
            live = await self._live([doc["_id"] for doc in docs])
            for doc in docs:
                row = compare(
                    doc["_id"],
                    live.get(doc["_id"]),
                    BalanceAt(int(doc["balance"]), int(doc["epoch"]), int(doc["seq"])),
                    outbox.get(doc["_id"], 0),
                    nothing_coming(doc["_id"], queue, outbox, dead),
                    *held.get(doc["_id"], HeldEvents()).verdict_args,
                )
                report.statuses[str(row.status)] += 1
                if row.status is not Status.OK or account:
                    report.rows.append(row)
            if progress is not None:
                progress(len(all_docs))
        if any(row.status is Status.BEHIND for row in report.rows):
            await self._confirm_behind(report, dead)
        report.rows = [
            dataclasses.replace(row, dead_letters=tuple(dead.get(row.account, ())))
            if row.status.drifts
            else row
            for row in report.rows
        ]
        return report

    async def _confirm_behind(self, report: Report, dead: dict[str, list[str]]) -> None:
        """Look again at accounts seen behind: a charge may have come in during the scan."""
        queue, (outbox, _) = await self._queue_messages(), await self._outbox()
        rows = []
        for row in report.rows:
            doc = None
            if row.status is Status.BEHIND:
                doc = await self.accounts.get(row.account)
            if doc is None:
                rows.append(row)
                continue
            live = (await self._live([row.account])).get(row.account)
            mongo = BalanceAt(int(doc["balance"]), int(doc["epoch"]), int(doc["seq"]))
            coming = nothing_coming(row.account, queue, outbox, dead)
            fresh = compare(row.account, live, mongo, row.outbox, coming)
            report.statuses[str(row.status)] -= 1
            report.statuses[str(fresh.status)] += 1
            rows.append(fresh)
        report.rows = rows

    async def _pages(self, account: str | None, size: int) -> AsyncIterator[list[MongoDoc]]:
        if account:
            doc = await self.accounts.get(account)
            if doc:
                yield [doc]
            return
        async for docs in self.accounts.pages(size):
            yield docs

    async def _dead_letters_by_account(self) -> dict[str, list[str]]:
        """The dead letters carrying each account's events, from the ledger's index."""
        carrying: defaultdict[str, list[str]] = defaultdict(list)
        for letter in await self.store.dead_letter_index():
            for account in letter.get("accounts", []):
                carrying[account].append(letter["_id"])
        return carrying

    async def _queue_messages(self) -> int:
        """Messages waiting, in flight or delayed: the pipeline is idle only at zero."""
        attributes = (
            await self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    async def _outbox(self) -> tuple[Counter[str], int]:
        """Signed token amounts per account still waiting in the outbox streams."""
        pending: Counter[str] = Counter()
        events = 0
        for shard in range(self.keys.shards):
            start = "-"
            while True:
                entries: list[tuple[str, dict[str, str]]] = await self.redis.xrange(  # type: ignore[assignment]
                    self.keys.outbox(shard), start, "+", count=OUTBOX_PAGE
                )
                for entry_id, fields in entries:
                    event = event_from_stream_entry(entry_id, fields)
                    pending[event.account] += event.signed_amount
                    events += 1
                if len(entries) < OUTBOX_PAGE:
                    break
                start = f"({entries[-1][0]}"
        return pending, events

    async def _live(self, accounts: list[str]) -> dict[str, BalanceAt]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hmget(self.keys.account(account), POSITION_FIELDS)
            answers = await pipe.execute()
        return {
            account: BalanceAt(int(balance), int(epoch), int(seq))
            for account, (balance, epoch, seq) in zip(accounts, answers, strict=True)
            if balance is not None
        }
