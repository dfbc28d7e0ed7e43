"""The clients an operator command needs, opened from the settings and closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from shared.accounting.bank import TokenBank
from shared.keys import Keys
from shared.settings import Settings
from shared.sqs import SQSClient, queue_url, sqs_client
from shared.stores import MongoDoc, Redis, mongo_client, redis_client


@dataclass(frozen=True, slots=True)
class Connections:
    settings: Settings
    keys: Keys
    redis: Redis
    db: AsyncDatabase[MongoDoc]
    sqs: SQSClient
    queue_url: str
    dlq_url: str

    def bank(self) -> TokenBank:
        """The live balances, for the commands that correct them (settle, redrive)."""
        return TokenBank.for_settings(self.settings, self.redis, self.db)


@asynccontextmanager
async def connect(settings: Settings | None = None) -> AsyncIterator[Connections]:
    settings = settings or Settings()
    redis, mongo = redis_client(settings), mongo_client(settings)
    try:
        async with sqs_client(settings) as sqs:
            yield Connections(
                settings=settings,
                keys=Keys(settings.shards),
                redis=redis,
                db=mongo[settings.mongo_db],
                sqs=sqs,
                queue_url=await queue_url(sqs, settings.queue_name),
                dlq_url=await queue_url(sqs, settings.dlq_name),
            )
    finally:
        await redis.aclose()
        await mongo.close()
