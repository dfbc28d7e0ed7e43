"""Accounts for the load, and the books: balances in Redis and MongoDB, and the drain."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.stack import BENCH_ROLE
from shared.accounting.bank import TokenBank
from shared.auth import issue_dev_token
from shared.keys import Keys
from shared.settings import Settings
from shared.stores import mongo_client, redis_client

BALANCE = 1_000_000_000
TOKEN_TTL_S = 6 * 3600


async def seed(settings: Settings, ids: list[str], concurrency: int = 32) -> None:
    """Create the accounts in MongoDB and hydrate them into Redis, like `maas accounts`."""
    await _each(settings, ids, concurrency, create=True)


async def hydrate(settings: Settings, ids: list[str], concurrency: int = 32) -> None:
    """Load accounts that are already in MongoDB into Redis, as a first charge would."""
    await _each(settings, ids, concurrency, create=False)


async def _each(settings: Settings, ids: list[str], concurrency: int, create: bool) -> None:
    mongo, redis = mongo_client(settings), redis_client(settings)
    try:
        bank = TokenBank.for_settings(settings, redis, mongo[settings.mongo_db])
        store = bank.accounts
        gate = asyncio.Semaphore(concurrency)

        async def one(account: str) -> None:
            async with gate:
                if create:
                    await store.create(account, BALANCE)
                await bank.hydrate(account)

        await asyncio.gather(*(one(a) for a in ids))
    finally:
        await mongo.close()
        await redis.aclose()


def tokens(settings: Settings, ids: list[str], roles: list[str]) -> list[str]:
    """Tokens for the load: out of reach of the rate limits (see `BENCH_ROLE`)."""
    return [issue_dev_token(settings, a, [*roles, BENCH_ROLE], TOKEN_TTL_S) for a in ids]


@dataclass(frozen=True)
class Books:
    """Σ balances on both sides, and how many accounts MongoDB has not caught up on."""

    redis_balance: int
    mongo_balance: int
    behind: int

    @property
    def drained(self) -> bool:
        return self.behind == 0


class Auditor:
    """Reads both sides of the books with clients kept open between polls."""

    def __init__(self, settings: Settings, ids: list[str]) -> None:
        self.settings = settings
        self.ids = ids
        self.keys = Keys(settings.shards)
        self.mongo = mongo_client(settings)
        self.redis = redis_client(settings)

    async def close(self) -> None:
        await self.mongo.close()
        await self.redis.aclose()

    async def books(self) -> Books:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in self.ids:
                pipe.hmget(self.keys.account(account), "balance", "epoch", "seq")
            live = await pipe.execute()
        # One `_id` range in `_id` order: the store reads it from the index, whatever its size.
        span = {"$gte": min(self.ids), "$lte": max(self.ids)}
        cursor = (
            self.mongo[self.settings.mongo_db]["accounts"]
            .find({"_id": span}, {"balance": 1, "epoch": 1, "seq": 1})
            .sort("_id", 1)
        )
        stored = {doc["_id"]: doc async for doc in cursor}
        behind = redis_sum = mongo_sum = 0
        for account, (balance, epoch, seq) in zip(self.ids, live, strict=True):
            doc = stored[account]
            redis_sum += int(balance)
            mongo_sum += int(doc["balance"])
            if int(seq) > 0 and (int(doc["epoch"]), int(doc["seq"])) != (int(epoch), int(seq)):
                behind += 1
        return Books(redis_sum, mongo_sum, behind)

    async def wait_shipped(self, timeout_s: float) -> None:
        """Until the relays handed every outbox entry to SQS (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with self.redis.pipeline(transaction=False) as pipe:
                for shard in range(self.settings.shards):
                    pipe.xlen(self.keys.outbox(shard))
                if not sum(await pipe.execute()):
                    return
            await asyncio.sleep(0.05)

    async def wait_moved(self, mongo_balance: int, timeout_s: float) -> float:
        """The monotonic time MongoDB's Σ balance first differs from `mongo_balance`
        (or the timeout's)."""
        deadline = time.monotonic() + timeout_s
        while (await self.books()).mongo_balance == mongo_balance:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        return time.monotonic()

    async def wait_drained(self, timeout_s: float) -> tuple[float, Books]:
        """Seconds until MongoDB applied every event Redis assigned (or the timeout)."""
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            state = await self.books()
            if state.drained or time.monotonic() > deadline:
                return time.monotonic() - started, state
            await asyncio.sleep(0.05)
