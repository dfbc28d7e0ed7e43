"""Gather what reconciliation compares: Redis, MongoDB, the outbox and the queue."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prometheus_client import Gauge
from pymongo.asynchronous.database import AsyncDatabase

from services.ledger.domain.reconcile import Position, Row, Status, compare
from shared.events import event_from_stream_entry
from shared.keys import Keys
from shared.sqs import SQSClient
from shared.stores import MongoDoc, Redis

DRIFT = Gauge(
    "maas_reconcile_drift_tokens",
    "Sum of |Redis - MongoDB| over settled accounts at the last reconciliation",
)
DRIFTING = Gauge("maas_reconcile_drifting_accounts", "Settled accounts whose balances differ")


@dataclass(frozen=True, slots=True)
class Report:
    rows: list[Row]
    queue_messages: int
    outbox_events: int

    @property
    def idle(self) -> bool:
        return self.queue_messages == 0 and self.outbox_events == 0

    @property
    def drifting(self) -> list[Row]:
        return [row for row in self.rows if row.status is Status.DRIFT]


class Reconciler:
    def __init__(
        self, redis: Redis, db: AsyncDatabase[MongoDoc], sqs: SQSClient, queue_url: str, keys: Keys
    ) -> None:
        self.redis = redis
        self.accounts = db["accounts"]
        self.sqs = sqs
        self.queue_url = queue_url
        self.keys = keys

    async def run(self, account: str | None = None, limit: int = 10_000) -> Report:
        queue = await self._queue_messages()
        outbox, outbox_events = await self._outbox()
        query = {"_id": account} if account else {}
        docs = [doc async for doc in self.accounts.find(query).sort("updated_at", -1).limit(limit)]
        live = await self._live([doc["_id"] for doc in docs])
        idle = queue == 0 and outbox_events == 0
        rows = [
            compare(
                doc["_id"],
                live.get(doc["_id"]),
                Position(int(doc["balance"]), int(doc["epoch"]), int(doc["seq"])),
                outbox.get(doc["_id"], 0),
                idle,
            )
            for doc in docs
        ]
        report = Report(sorted(rows, key=lambda r: r.account), queue, outbox_events)
        DRIFT.set(sum(abs(row.drift) for row in report.rows))
        DRIFTING.set(len(report.drifting))
        return report

    async def _queue_messages(self) -> int:
        attributes = (
            await self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    async def _outbox(self) -> tuple[Counter[str], int]:
        """Signed token amounts per account still waiting in the outbox streams."""
        pending: Counter[str] = Counter()
        events = 0
        for shard in range(self.keys.shards):
            entries: list[tuple[str, dict[str, str]]] = await self.redis.xrange(  # type: ignore[assignment]
                self.keys.outbox(shard)
            )
            for entry_id, fields in entries:
                event = event_from_stream_entry(entry_id, fields)
                pending[event.account] += event.signed_amount
                events += 1
        return pending, events

    async def _live(self, accounts: list[str]) -> dict[str, Position]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.hmget(self.keys.account(account), ["balance", "epoch", "seq"])
            answers = await pipe.execute()
        return {
            account: Position(int(balance), int(epoch), int(seq))
            for account, (balance, epoch, seq) in zip(accounts, answers, strict=True)
            if balance is not None
        }
