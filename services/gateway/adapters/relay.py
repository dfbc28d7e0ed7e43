"""The outbox relay: moves each shard's events from its Redis stream to SQS FIFO.

One relay holds a shard at a time (a lease in Redis, renewed while alive, taken over
when a gateway dies), so an account's events reach SQS in seq order. Events of one
shard are packed into one message; up to ten shards' messages go in one
SendMessageBatch. A shard waits up to the linger time for a fuller batch, unless someone
waits on it (a refund or a credit answered only once SQS has it adds to the shard's
hurry stream); shards that are due fill their call with the oldest lingering ones, and
those due by age alone go a few calls a pass, so their sends stay spread out. Between
passes an idle relay blocks on its shards' streams (XREAD) until one has news, one
comes of age or its leases want renewing, rather than polling. Entries leave the stream
only after SQS accepted them; a resend after a crash carries the same deduplication id,
and the ledger skips duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio.client import Redis as SingleRedis

from shared import tracing
from shared.accounting.events import Batch, event_from_stream_entry
from shared.aio import sleep_unless, unless_stopped
from shared.keys import Keys
from shared.sqs import QueueAddress, SQSClient
from shared.stores import Redis, lua_script

log = logging.getLogger(__name__)

SQS_BATCH_MAX_ENTRIES = 10
SQS_BATCH_MAX_BYTES = 250_000  # under the 256 KiB request limit, with room for the envelope
EMPTY_STREAM = "0-0"  # an XREAD position before any entry: any new one is news
# The longest a relay blocks on its streams: well under the Redis client's 5 s socket
# timeout, which would end the read as an error.
MAX_BLOCK_MS = 2000

RELAY_LAG = Histogram(
    "maas_relay_lag_seconds",
    "Age of the oldest event of a batch when SQS accepted it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
RELAY_BATCH = Histogram(
    "maas_relay_batch_size", "Events packed into one SQS message", buckets=(1, 5, 10, 25, 50, 100)
)
SQS_REQUESTS = Counter("maas_relay_sqs_requests_total", "SendMessageBatch calls", ["outcome"])
EVENTS_RELAYED = Counter("maas_relay_events_total", "Events accepted by SQS")
OUTBOX_DEPTH = Gauge(
    "maas_outbox_depth",
    "Events waiting in an outbox shard",
    ["shard"],
    multiprocess_mode="mostrecent",
)
SHARDS_HELD = Gauge(
    "maas_relay_shards_held",
    "Outbox shards whose lease a gateway process holds",
    multiprocess_mode="livesum",
)


# An outbox shard's entries as XRANGE gives them: (entry id, fields).
Entries = list[tuple[str, dict[str, str]]]


@dataclass(slots=True)
class Pending:
    shard: int
    entry_ids: list[str]
    batch: Batch
    oldest_ms: int


@dataclass
class Relay:
    redis: Redis
    sqs: SQSClient
    queue: QueueAddress
    keys: Keys
    owner: str
    batch_size: int
    lease_ttl_ms: int
    linger_ms: int
    idle_sleep_ms: int
    max_block_ms: int = MAX_BLOCK_MS
    held: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._lease = self.redis.register_script(lua_script("lease"))
        self._release = self.redis.register_script(lua_script("release"))
        self._outbox_heads = self.redis.register_script(lua_script("outbox_heads"))
        self._leases_renewed_at = 0.0
        # What the last pass saw: each held shard's newest entry, and when the first of
        # the lingering shards comes of age (epoch ms; None: none lingers).
        self._newest: dict[int, str] = {}
        self._next_due_ms: float | None = None
        self._behind = False  # a shard held more than one batch: pass again at once

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, then flush what this relay still holds."""
        backoff = 0.0
        while not stop.is_set():
            try:
                await self.renew_leases()
                await self.relay_once(flush=False)
                if not self._behind:
                    await sleep_unless(stop, self.idle_sleep_ms / 1000)
                    await self._wait_for_news(stop)
                backoff = 0.0
            except Exception:
                backoff = min(5.0, max(0.1, backoff * 2))
                log.warning(
                    "relay round failed; retrying", exc_info=True, extra={"backoff_s": backoff}
                )
                await sleep_unless(stop, backoff)
        try:
            await self.relay_once(flush=True)
        except Exception:
            log.warning("final relay flush failed; another relay will send it", exc_info=True)
        await self.release()

    async def _wait_for_news(self, stop: asyncio.Event) -> None:
        """Block until a held shard has an entry newer than the last pass saw or someone
        hurries it, a lingering shard comes of age, the leases want renewing, `stop`, or
        `max_block_ms`.

        Polling twenty times a second was most of an idle gateway's CPU and a steady
        load on Redis; a blocked XREAD costs neither, and wakes the relay as soon as an
        entry lands, whichever process wrote it. Under load it answers at once, so the
        relay passes at most every `idle_sleep_ms`, as before. A cluster cannot read
        streams of several slots in one call: there the relay keeps polling.
        """
        if not isinstance(self.redis, SingleRedis):
            return
        wake_at = self._leases_renewed_at + self.lease_ttl_ms / 3000
        if self._next_due_ms is not None:
            wake_at = min(wake_at, time.monotonic() + (self._next_due_ms - _now_ms()) / 1000)
        block_ms = min(self.max_block_ms, int((wake_at - time.monotonic()) * 1000))
        if block_ms <= 0:
            return
        streams: dict[str, str] = {}
        for shard in self.held:
            streams[self.keys.outbox(shard)] = self._newest.get(shard) or EMPTY_STREAM
            streams[self.keys.hurry(shard)] = EMPTY_STREAM
        if not streams:
            await sleep_unless(stop, block_ms / 1000)
            return
        await unless_stopped(stop, self.redis.xread(streams, count=1, block=block_ms))  # type: ignore[arg-type]

    async def renew_leases(self) -> None:
        if time.monotonic() - self._leases_renewed_at < self.lease_ttl_ms / 3000:
            return
        results = await asyncio.gather(
            *(
                self._lease(keys=[self.keys.lease(s)], args=[self.owner, self.lease_ttl_ms])
                for s in range(self.keys.shards)
            )
        )
        held = [s for s, held in enumerate(results) if held]
        if held != self.held:
            log.info(
                "outbox shards held changed",
                extra={"taken": sorted(set(held) - set(self.held)),
                       "lost": sorted(set(self.held) - set(held)), "held": len(held)},
            )  # fmt: skip
        self.held = held
        self._leases_renewed_at = time.monotonic()
        SHARDS_HELD.set(len(self.held))
        await self._measure_depth()

    async def _measure_depth(self) -> None:
        """Outbox depth for the metrics, at lease-renewal pace rather than every pass."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.held:
                pipe.xlen(self.keys.outbox(shard))
            depths = await pipe.execute()
        for shard, depth in zip(self.held, depths, strict=True):
            OUTBOX_DEPTH.labels(str(shard)).set(depth)

    async def release(self) -> None:
        await asyncio.gather(
            *(self._release(keys=[self.keys.lease(s)], args=[self.owner]) for s in self.held)
        )
        self.held = []
        SHARDS_HELD.set(0)

    async def relay_once(self, flush: bool) -> int:
        """One pass over the held shards; returns how many events SQS accepted."""
        pending = await self._read(flush)
        sent = 0
        for chunk in _chunks(pending):
            sent += await self._send(chunk)
        return sent

    async def _read(self, flush: bool) -> list[Pending]:
        """The held shards to send: the full ones and those someone waits on (all on
        flush), those past the linger (the oldest first, `_paced_calls` calls' worth a
        pass), and the oldest lingering ones their last call has room for.

        Each pass first looks at every shard's length, oldest and newest entries and
        hurry stream only, in one script call (two commands a shard in a pipeline were
        most of an idle gateway's CPU: twenty passes a second); entries are read (and
        parsed) once their shard is due. Read whole on every pass, a lingering shard's
        entries were parsed twenty times before their send.
        """
        shards = list(self.held)
        self._newest, self._next_due_ms, self._behind = {}, None, False
        if not shards:
            return []
        now_ms = _now_ms()
        ready: list[int] = []
        aged: list[int] = []
        lingering: list[int] = []
        oldest: dict[int, int] = {}
        heads = await self._heads(shards)
        for shard, (length, head, newest, hurried) in zip(shards, heads, strict=True):
            if not length:
                continue
            self._newest[shard] = newest
            self._behind = self._behind or length > self.batch_size
            oldest[shard] = _stamp_ms(head)
            if flush or hurried or length >= self.batch_size:
                ready.append(shard)
            else:
                (aged if now_ms - oldest[shard] >= self.linger_ms else lingering).append(shard)
        # Shards due by age alone go a few calls a pass, the oldest first; the rest wait
        # for the next pass (`idle_sleep_ms` later). Shards that started lingering
        # together (the first events after a quiet spell) would otherwise come due
        # together every linger, and their one burst a second held every process of the
        # pipeline busy at once while requests waited; paced, their sends spread out and
        # stay spread.
        aged.sort(key=oldest.__getitem__)
        paced = self._paced_calls() * SQS_BATCH_MAX_ENTRIES
        ready += aged[:paced]
        lingering = aged[paced:] + sorted(lingering, key=oldest.__getitem__)
        if lingering:
            self._next_due_ms = oldest[lingering[0]] + self.linger_ms
        if not ready:
            return []
        # Due shards fill their last SendMessageBatch call with the oldest lingering ones:
        # a call per shard coming of age cost 72 calls per 1,000 memes at 300 memes/s.
        room = -len(ready) % SQS_BATCH_MAX_ENTRIES
        ready += lingering[:room]
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in ready:
                pipe.xrange(self.keys.outbox(shard), count=self.batch_size)
            read: list[Entries] = await pipe.execute()
        return [
            Pending(
                shard,
                [entry_id for entry_id, _ in entries],
                Batch(shard, [event_from_stream_entry(i, fields) for i, fields in entries]),
                _stamp_ms(entries[0][0]),
            )
            for shard, entries in zip(ready, read, strict=True)
            if entries  # another relay took the shard and sent them meanwhile
        ]

    def _paced_calls(self) -> int:
        """SendMessageBatch calls a pass for shards due by age alone: twice what the held
        shards need at one send per linger each, so a relay behind catches up."""
        if not self.linger_ms:
            return len(self.held)  # no linger: nothing to pace
        per_pass = len(self.held) * self.idle_sleep_ms / self.linger_ms
        return max(1, math.ceil(2 * per_pass / SQS_BATCH_MAX_ENTRIES))

    async def _heads(self, shards: list[int]) -> list[tuple[int, str, str, bool]]:
        """Each shard's outbox length, oldest and newest entry ids and hurry (cleared as
        read).

        One call for all shards; on a cluster, whose shards live on different nodes, a
        call per shard (a shard's keys share its slot)."""
        calls = [[self.keys.outbox(s), self.keys.hurry(s)] for s in shards]
        if isinstance(self.redis, SingleRedis):
            calls = [[key for keys in calls for key in keys]]
        flat = [
            value
            for answer in await asyncio.gather(*(self._outbox_heads(keys=k) for k in calls))
            for value in answer
        ]
        return [
            (int(flat[i]), str(flat[i + 1]), str(flat[i + 2]), bool(int(flat[i + 3])))
            for i in range(0, len(flat), 4)
        ]

    async def _send(self, chunk: list[tuple[Pending, str]]) -> int:
        entries = [
            {
                "Id": str(p.shard),
                "MessageBody": body,
                "MessageGroupId": p.batch.group_id,
                "MessageDeduplicationId": p.batch.deduplication_id,
            }
            for p, body in chunk
        ]
        try:
            with tracing.span(
                "relay send",
                {"messaging.system": "aws_sqs", "messaging.batch.message_count": len(entries)},
                links=(event.trace for p, _ in chunk for event in p.batch.events),
                kind=tracing.SpanKind.PRODUCER,
            ):
                answer = await self.sqs.send_message_batch(
                    QueueUrl=await self.queue.url(), Entries=entries
                )
        except Exception:
            SQS_REQUESTS.labels("error").inc()
            raise
        SQS_REQUESTS.labels("ok").inc()
        accepted = {int(ok["Id"]) for ok in answer.get("Successful", [])}
        for failed in answer.get("Failed", []):
            log.warning(
                "SQS refused a batch", extra={"shard": failed["Id"], "code": failed.get("Code")}
            )
        done = [p for p, _ in chunk if p.shard in accepted]
        if done:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in done:
                    pipe.xdel(self.keys.outbox(p.shard), *p.entry_ids)
                await pipe.execute()
        now_ms = _now_ms()
        for p in done:
            RELAY_LAG.observe(max(0.0, (now_ms - p.oldest_ms) / 1000))
            RELAY_BATCH.observe(len(p.batch.events))
        count = sum(len(p.batch.events) for p in done)
        EVENTS_RELAYED.inc(count)
        return count


def _now_ms() -> float:
    """The wall clock in ms, the clock Redis stamps stream entries with."""
    return time.time() * 1000


def _stamp_ms(entry_id: str) -> int:
    """When Redis added a stream entry (the first part of its id)."""
    return int(entry_id.partition("-")[0])


def _chunks(pending: list[Pending]) -> list[list[tuple[Pending, str]]]:
    """Group messages into SendMessageBatch calls within SQS's count and size limits."""
    chunks: list[list[tuple[Pending, str]]] = []
    current: list[tuple[Pending, str]] = []
    size = 0
    for p in pending:
        body = p.batch.encode()
        if current and (
            len(current) == SQS_BATCH_MAX_ENTRIES or size + len(body) > SQS_BATCH_MAX_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append((p, body))
        size += len(body)
    if current:
        chunks.append(current)
    return chunks
