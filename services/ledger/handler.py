"""Apply one SQS message to MongoDB: decode, plan with the ordering rule, write."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Outcome, plan
from shared.events import Batch, MalformedMessage, decode_batch, parse_rfc3339
from shared.metrics import LATENCY_BUCKETS

EVENTS_APPLIED = Counter("maas_ledger_events_applied_total", "Events applied to MongoDB", ["type"])
MESSAGES = Counter("maas_ledger_messages_total", "Messages handled, by outcome", ["outcome"])
APPLY_LATENCY = Histogram(
    "maas_ledger_apply_duration_seconds", "Time to apply one message", buckets=LATENCY_BUCKETS
)
LAG = Histogram(
    "maas_ledger_lag_seconds",
    "From a charge in Redis to its application in MongoDB",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


@dataclass(frozen=True, slots=True)
class Handled:
    outcome: Outcome
    reason: str = ""

    @property
    def done(self) -> bool:
        """Whether the message can leave the queue."""
        return self.outcome in (Outcome.APPLIED, Outcome.DUPLICATE)


def summary(batch: Batch) -> dict[str, object]:
    """What an operator sees of a dead-lettered message without decoding it."""
    seqs = [e.seq for e in batch.events]
    return {
        "shard": batch.shard,
        "accounts": sorted({e.account for e in batch.events}),
        "seq_range": [min(seqs), max(seqs)],
        "events": len(batch.events),
    }


class MessageHandler:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def handle(self, body: str, message_id: str, receive_count: int) -> Handled:
        started = time.perf_counter()
        try:
            batch = decode_batch(body)
        except MalformedMessage as error:
            await self.store.record_failure(message_id, f"malformed: {error}", receive_count, {})
            MESSAGES.labels(Outcome.MALFORMED).inc()
            return Handled(Outcome.MALFORMED, str(error))
        positions = await self.store.positions(sorted({e.account for e in batch.events}))
        result = plan(batch.events, positions)
        if result.updates:
            await self.store.write_journal(
                [e for u in result.updates for e in u.events], message_id
            )
            matched = await self.store.apply(result.updates)
            if matched < len(result.updates):
                result.problems.append("an account moved during the update; retrying")
        outcome = result.outcome
        if result.problems:
            reason = "; ".join(result.problems[:5])
            await self.store.record_failure(message_id, reason, receive_count, summary(batch))
            MESSAGES.labels(outcome).inc()
            return Handled(outcome, reason)
        now = time.time()
        for update in result.updates:
            for event in update.events:
                EVENTS_APPLIED.labels(event.type).inc()
            LAG.observe(max(0.0, now - parse_rfc3339(update.events[-1].at).timestamp()))
        MESSAGES.labels(outcome).inc()
        APPLY_LATENCY.observe(time.perf_counter() - started)
        return Handled(outcome)
