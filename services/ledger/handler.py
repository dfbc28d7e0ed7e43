"""Apply what one receive brought (up to ten messages) to MongoDB in one pass.

The events of all the messages are planned together, so an account's events fold
into one conditional update even when the relay spread them over several messages.
A message leaves the queue only when none of its events has to wait.

The worker keeps each account's applied position in memory: it is the only writer
of the accounts of a shard while it holds the shard's messages, and a stale position
(another worker moved the account) shows up as an update that matches nothing,
after which the position is read again and the message retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from services.ledger.adapters.mongo import LedgerStore
from services.ledger.domain.apply import Outcome, Plan, Position, plan
from shared.events import Batch, Event, MalformedMessage, decode_batch, parse_rfc3339
from shared.metrics import LATENCY_BUCKETS

EVENTS_APPLIED = Counter("maas_ledger_events_applied_total", "Events applied to MongoDB", ["type"])
MESSAGES = Counter("maas_ledger_messages_total", "Messages handled, by outcome", ["outcome"])
APPLY_LATENCY = Histogram(
    "maas_ledger_apply_duration_seconds",
    "Time to apply one receive of messages",
    buckets=LATENCY_BUCKETS,
)
LAG = Histogram(
    "maas_ledger_lag_seconds",
    "From a charge in Redis to its application in MongoDB",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
POSITIONS_KEPT = 200_000


@dataclass(frozen=True, slots=True)
class Received:
    message_id: str
    body: str
    receive_count: int


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
        self.positions: dict[str, Position] = {}

    async def handle(self, messages: list[Received]) -> dict[str, Handled]:
        started = time.perf_counter()
        handled: dict[str, Handled] = {}
        batches: list[tuple[Received, Batch]] = []
        for message in messages:
            try:
                batches.append((message, decode_batch(message.body)))
            except MalformedMessage as error:
                reason = f"malformed: {error}"
                await self.store.record_failure(
                    message.message_id, reason, message.receive_count, {}
                )
                handled[message.message_id] = Handled(Outcome.MALFORMED, reason)
        source = {e.id: m.message_id for m, batch in batches for e in batch.events}
        result = await self._apply([e for _, batch in batches for e in batch.events], source)
        applied = {e.id for u in result.updates for e in u.events}
        for message, batch in batches:
            waiting = sorted({e.account for e in batch.events if e.id in result.held})
            if waiting:
                reason = "; ".join(result.problems[account] for account in waiting)
                await self.store.record_failure(
                    message.message_id, reason, message.receive_count, summary(batch)
                )
                handled[message.message_id] = Handled(Outcome.GAP, reason)
            elif any(e.id in applied for e in batch.events):
                handled[message.message_id] = Handled(Outcome.APPLIED)
            else:
                handled[message.message_id] = Handled(Outcome.DUPLICATE)
        for outcome in handled.values():
            MESSAGES.labels(outcome.outcome).inc()
        APPLY_LATENCY.observe(time.perf_counter() - started)
        return handled

    async def _apply(self, events: list[Event], source: dict[str, str]) -> Plan:
        missing = sorted({e.account for e in events} - self.positions.keys())
        if missing:
            if len(self.positions) + len(missing) > POSITIONS_KEPT:
                self.positions.clear()
            self.positions.update(await self.store.positions(missing))
        result = plan(events, self.positions)
        if not result.updates:
            return result
        await self.store.write_journal([e for u in result.updates for e in u.events], source)
        moved = await self.store.apply(result.updates)
        now = time.time()
        for update in result.updates:
            if update.account in moved:
                self.positions.pop(update.account, None)
                result.hold(update.account, update.events, "the account moved; retrying")
                continue
            self.positions[update.account] = update.end
            for event in update.events:
                EVENTS_APPLIED.labels(event.type).inc()
            LAG.observe(max(0.0, now - parse_rfc3339(update.events[-1].at).timestamp()))
        result.updates = [u for u in result.updates if u.account not in moved]
        return result
