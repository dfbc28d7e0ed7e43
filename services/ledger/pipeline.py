"""Samples of the pipeline over the last hour, kept in Redis for every ledger replica.

The console's charts must look the same whichever replica answers, so samples live in
Redis, one sorted set per metric scored by time and trimmed to the hour. One replica
at a time (a lease, like the periodic reconciliation) samples what is global: outbox
depth per shard and the age of each shard's oldest entry (relay lag) from Redis, queue
and DLQ depth from SQS. Every replica adds what only it knows: the events it applied
and their lag since its previous sample.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from prometheus_client import Metric

from services.ledger.usecases.apply_messages import EVENTS_APPLIED, LAG
from shared.aio import sleep_unless
from shared.keys import Keys
from shared.sqs import SQSClient, queue_depth
from shared.stores import Redis, lua_script

WINDOW_S = 3600

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    values: list[float]
    source: str = ""


class Samples:
    """The last hour of each metric; a sample is a vector (one value per shard, or one)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, metric: str, sample: Sample) -> None:
        member = orjson.dumps({"at": sample.at, "v": sample.values, "src": sample.source}).decode()
        key = Keys.samples(metric)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {member: sample.at})
            pipe.zremrangebyscore(key, "-inf", sample.at - WINDOW_S)
            await pipe.execute()

    async def since(self, metric: str, start: float) -> list[Sample]:
        members = await self.redis.zrangebyscore(Keys.samples(metric), start, "+inf")
        samples = [orjson.loads(str(m)) for m in members]
        return [Sample(s["at"], s["v"], s["src"]) for s in samples]


def totals(metric: Metric, suffix: str) -> float:
    return sum(s.value for s in metric.samples if s.name.endswith(suffix))


class OwnCounts:
    """This process's applied events and lag since the previous reading."""

    def __init__(self) -> None:
        self.last = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        (applied,) = EVENTS_APPLIED.collect()
        (lag,) = LAG.collect()
        return totals(applied, "_total"), totals(lag, "_sum"), totals(lag, "_count")

    def delta(self) -> tuple[float, float, float]:
        now = self._read()
        delta = (now[0] - self.last[0], now[1] - self.last[1], now[2] - self.last[2])
        self.last = now
        return delta


@dataclass
class Sampler:
    redis: Redis
    sqs: SQSClient
    queue_url: str
    dlq_url: str
    keys: Keys
    interval_s: float
    owner: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)
    own: OwnCounts = field(default_factory=OwnCounts, init=False)

    def __post_init__(self) -> None:
        self.samples = Samples(self.redis)

    async def run(self, stop: asyncio.Event) -> None:
        lease = self.redis.register_script(lua_script("lease"))
        ttl_ms = int(3 * self.interval_s * 1000)
        while not stop.is_set():
            try:
                await self.sample_own()
                if await lease(keys=[Keys.sampler_lease()], args=[self.owner, ttl_ms]):
                    await self.sample_pipeline()
            except Exception:
                log.warning("pipeline sampling failed", exc_info=True)
            await sleep_unless(stop, self.interval_s)

    async def sample_own(self) -> None:
        applied, lag_sum, lag_count = self.own.delta()
        now = time.time()
        await self.samples.add("applied", Sample(now, [applied], self.owner))
        await self.samples.add("ledger_lag", Sample(now, [lag_sum, lag_count], self.owner))

    async def sample_pipeline(self) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(self.keys.shards):
                pipe.xlen(self.keys.outbox(shard))
                pipe.xrange(self.keys.outbox(shard), "-", "+", count=1)
            answers = await pipe.execute()
        depths = [float(n) for n in answers[0::2]]
        oldest = [int(first[0][0].split("-")[0]) for first in answers[1::2] if first]
        relay_lag = max((now - ms / 1000 for ms in oldest), default=0.0)
        queue, dlq = await asyncio.gather(
            queue_depth(self.sqs, self.queue_url), queue_depth(self.sqs, self.dlq_url)
        )
        await self.samples.add("outbox", Sample(now, depths))
        await self.samples.add("relay_lag", Sample(now, [max(relay_lag, 0.0)]))
        await self.samples.add("queue", Sample(now, [float(queue)]))
        await self.samples.add("dlq", Sample(now, [float(dlq)]))


def per_bucket(samples: list[Sample], bucket_s: float) -> dict[float, list[float]]:
    """Add up the samples of every replica that fall in the same time bucket."""
    buckets: defaultdict[float, list[float]] = defaultdict(list)
    for sample in samples:
        bucket = sample.at - sample.at % bucket_s
        summed = buckets[bucket]
        if not summed:
            summed.extend(0.0 for _ in sample.values)
        for n, value in enumerate(sample.values):
            summed[n] += value
    return dict(sorted(buckets.items()))
