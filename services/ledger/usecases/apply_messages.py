"""Apply what one receive brought (up to ten messages) to MongoDB in one pass.

The events of all the messages are planned together, so an account's events fold
into one conditional update even when the relay spread them over several messages.
A message leaves the queue only when none of its events has to wait.

Several workers (replicas, and receivers within one) share the queue. SQS hands a
shard's messages to one receiver at a time, but the next message of a shard may go to
another worker, so the applied position a worker remembers can be behind MongoDB's.
A remembered position is only a guess: an event that looks like a gap against it is
checked against MongoDB before anything is held, and an update that matches nothing
(another worker moved the account) reads the position again and plans anew. The
conditional single-document update is the only guard that keeps the books exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Histogram

from services.ledger.adapters.mongo import Holder, LedgerStore, journal_id
from services.ledger.domain.apply import Outcome, Plan, Position, Voided, plan
from services.ledger.domain.messages import Received, summary
from services.ledger.usecases.repeats import judge
from shared import tracing
from shared.accounting.credits import FirstCredit
from shared.accounting.events import (
    CLOSE,
    Batch,
    Event,
    MalformedMessage,
    decode_batch,
    parse_rfc3339,
)
from shared.accounting.regions import Pools
from shared.metrics import LATENCY_BUCKETS

log = logging.getLogger(__name__)

EVENTS_APPLIED = Counter("maas_ledger_events_applied_total", "Events applied to MongoDB", ["type"])
MESSAGES = Counter("maas_ledger_messages_total", "Messages handled, by outcome", ["outcome"])
STALE_POSITIONS = Counter(
    "maas_ledger_stale_positions_total",
    "Remembered positions found behind MongoDB (another worker applied the account)",
)
REUSED_POSITIONS = Counter(
    "maas_ledger_reused_positions_total",
    "Events found at a position the journal holds for another event (held for settle)",
)
VOIDED = Counter(
    "maas_ledger_events_voided_total",
    "Credits repeating an idempotency key, refunds repeating a charge's refund or giving "
    "back a charge never counted: kept in the journal, out of the balance",
    ["type"],
)
STRANDED = Counter(
    "maas_ledger_stranded_events_total",
    "Events of an epoch the account had left before they were counted (held for settle)",
)
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
# Each round re-reads the positions another worker moved meanwhile; a shard's messages
# go to one receiver at a time, so a second mover within one receive is already rare.
APPLY_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Handled:
    outcome: Outcome
    reason: str = ""

    @property
    def done(self) -> bool:
        """Whether the message can leave the queue."""
        return self.outcome in (Outcome.APPLIED, Outcome.DUPLICATE)


class CreditRevoker(Protocol):
    async def revoke_credits(self, repeats: list[tuple[Event, FirstCredit]]) -> int: ...


@dataclass
class Summary:
    """What the handler did since the last summary line."""

    applied_events: int = 0
    held_messages: int = 0
    lag_max_s: float = 0.0


class MessageHandler:
    def __init__(self, store: LedgerStore, max_receive_count: int, bank: CreditRevoker) -> None:
        self.store = store
        self.max_receive_count = max_receive_count
        self.bank = bank
        self.pools = Pools(store.db)
        self.positions: dict[str, Position] = {}
        self.summary = Summary()

    async def handle(self, messages: list[Received]) -> dict[str, Handled]:
        started = time.perf_counter()
        handled: dict[str, Handled] = {}
        batches: list[tuple[Received, Batch]] = []
        for message in messages:
            try:
                batches.append((message, decode_batch(message.body)))
            except MalformedMessage as error:
                reason = f"malformed: {error}"
                await self._failed(message, reason, {})
                handled[message.message_id] = Handled(Outcome.MALFORMED, reason)
        source = {e.id: m.message_id for m, batch in batches for e in batch.events}
        with tracing.span(
            "ledger apply",
            {"messaging.batch.message_count": len(batches)},
            links=(e.trace for _, batch in batches for e in batch.events),
            kind=tracing.SpanKind.CONSUMER,
        ):
            result = await self._apply([e for _, batch in batches for e in batch.events], source)
            # Before the messages leave the queue: a crash here redelivers them, and the
            # returns found applied then reach their pools.
            returns = [e for e in (*result.applied, *result.duplicates) if e.type == "return"]
            if returns:
                await self.pools.take_back(returns)
        applied = {e.id for u in result.updates for e in u.events}
        for message, batch in batches:
            waiting = sorted({e.account for e in batch.events if e.id in result.held})
            if waiting:
                reason = "; ".join(result.problems[account] for account in waiting)
                await self._failed(message, reason, summary(batch))
                handled[message.message_id] = Handled(Outcome.GAP, reason)
                self.summary.held_messages += 1
            elif any(e.id in applied for e in batch.events):
                handled[message.message_id] = Handled(Outcome.APPLIED)
            else:
                handled[message.message_id] = Handled(Outcome.DUPLICATE)
        for outcome in handled.values():
            MESSAGES.labels(outcome.outcome).inc()
        APPLY_LATENCY.observe(time.perf_counter() - started)
        return handled

    async def _failed(self, message: Received, reason: str, about: dict[str, object]) -> None:
        """Record why; on the last receive SQS allows, index the message as a dead letter."""
        await self.store.record_failure(
            message.message_id, reason, message.receive_count, about, message.sequence
        )
        if message.receive_count >= self.max_receive_count:
            log.warning(
                "message dead-lettered",
                extra={"message_id": message.message_id, "group": message.group_id,
                       "receive_count": message.receive_count, "reason": reason},
            )  # fmt: skip
            await self.store.index_dead_letter(
                message.message_id,
                message.body,
                message.group_id,
                message.sequence,
                about,
                message.receive_count,
            )

    async def _apply(self, events: list[Event], source: dict[str, str]) -> Plan:
        """Plan against what this worker remembers; check what looks wrong against MongoDB."""
        checked: set[str] = set()  # accounts whose position was read in this receive
        known = await self._positions({e.account for e in events}, checked)
        done = Plan()
        pending, moved = events, set[str]()
        for _ in range(APPLY_ROUNDS):
            # A close takes the book's balance where it applies: read it, rarely needed.
            closing = sorted({e.account for e in pending if e.type == CLOSE})
            balances = await self.store.balances(closing) if closing else {}
            result = plan(pending, known, balances)
            stale = [a for a in result.problems if a in known and a not in checked]
            if stale and await self._refresh(stale, known, checked):
                balances = await self.store.balances(closing) if closing else {}
                result = plan(pending, known, balances)
            # Before writing: a refund may give back a charge found at a reused position.
            await self._check_duplicates(result, source)
            if result.stranded:
                await self._hold_reused([(e, None) for e in result.stranded], result, source)
            done.duplicates += result.duplicates
            moved = await self._write(result, source) if result.updates else set()
            done.merge_holds(result)
            done.updates += [u for u in result.updates if u.account not in moved]
            if not moved:
                return done
            await self._refresh(sorted(moved), known, checked)
            pending = [e for e in pending if e.account in moved]
        for account in moved:
            retry = [e for e in pending if e.account == account]
            done.hold(account, retry, "other workers kept moving the account; retrying")
        return done

    async def _positions(self, accounts: set[str], checked: set[str]) -> dict[str, Position]:
        """This receive's own view: remembered positions, the rest read from MongoDB."""
        known = {a: self.positions[a] for a in accounts if a in self.positions}
        missing = sorted(accounts - known.keys())
        if missing:
            fresh = await self.store.positions(missing)
            checked.update(missing)
            known.update(fresh)
            self._remember(fresh)
        return known

    async def _refresh(
        self, accounts: list[str], known: dict[str, Position], checked: set[str]
    ) -> bool:
        """Read the positions again; whether any of them had moved on."""
        fresh = await self.store.positions(accounts)
        checked.update(accounts)
        changed = {a: p for a, p in fresh.items() if known.get(a) != p}
        known.update(changed)
        self._remember(changed)
        STALE_POSITIONS.inc(len(changed))
        return bool(changed)

    def _remember(self, positions: dict[str, Position]) -> None:
        """Keep at most POSITIONS_KEPT positions, forgetting the oldest first.

        Receivers plan against their own copy (`_positions`), so forgetting here never
        changes what a receiver already awaiting MongoDB is working with.
        """
        self.positions.update(positions)
        for account in list(self.positions)[: max(0, len(self.positions) - POSITIONS_KEPT)]:
            del self.positions[account]

    async def _write(self, result: Plan, source: dict[str, str]) -> set[str]:
        """Journal and apply the plan's updates; the accounts another worker moved first.

        An account whose journal write finds a reused position, or whose refund gives
        back a charge settle has not adopted yet, is taken out of the plan and held.
        """
        voided = await self._judge(result)
        events = [e for u in result.updates for e in u.events]
        reused = await self.store.write_journal(events, source, voided)
        if reused:
            await self._hold_reused(reused, result, source)
            why = (
                "an adopted event holds a position MongoDB has not reached; redrive the "
                "event that position was first given to"
            )
            self._take_out(
                result,
                {
                    e.account: result.problems.get(e.account) or f"{e.account!r}: {why}"
                    for e, _ in reused
                },
            )
        moved = await self.store.apply(result.updates)
        now = time.time()
        for update in result.updates:
            if update.account in moved:
                self.positions.pop(update.account, None)
                continue
            self.positions[update.account] = update.end
            for event in update.events:
                EVENTS_APPLIED.labels(event.type).inc()
            lag = max(0.0, now - parse_rfc3339(update.events[-1].at).timestamp())
            LAG.observe(lag)
            self.summary.applied_events += len(update.events)
            self.summary.lag_max_s = max(self.summary.lag_max_s, lag)
        return moved

    @staticmethod
    def _take_out(result: Plan, reasons: dict[str, str]) -> None:
        """None of these accounts' updates may apply now: hold them whole, with why."""
        for update in result.updates:
            if update.account in reasons:
                result.hold(update.account, update.events, reasons[update.account])
        result.updates = [u for u in result.updates if u.account not in reasons]

    async def _judge(self, result: Plan) -> dict[str, Voided]:
        """Void repeated credits and refunds, and refunds of charges never counted.

        Redis gives a repeated credit's tokens back before MongoDB moves, so a crash in
        between leaves the credit to be voided again on redelivery, and the revocation
        is once per event.
        """
        events = [e for u in result.updates for e in u.events]
        verdicts = await judge(
            self.store,
            events,
            {u.account: u.start for u in result.updates},
            alongside={e.id for e in events},
        )
        self._take_out(result, verdicts.waiting)
        repeats = [
            (e, f) for e, f in verdicts.repeated_credits if e.account not in verdicts.waiting
        ]
        if repeats:
            await self.bank.revoke_credits(repeats)
        for update in result.updates:
            for event in update.events:
                if voided := verdicts.voided.get(event.id):
                    update.void(event, voided)
                    VOIDED.labels(event.type).inc()
                    log.info(
                        "voided a repeat",
                        extra={"account": event.account, "event_id": event.id,
                               "type": event.type, "tokens": event.amount, "of": voided.of,
                               "reason": voided.reason},
                    )  # fmt: skip
        return verdicts.voided

    async def _check_duplicates(self, result: Plan, source: dict[str, str]) -> None:
        """Hold duplicates whose position the journal gives to another event, unless it is
        the same credit or refund issued again there (then it is journaled as void)."""
        unique = list({e.id: e for e in result.duplicates}.values())
        if not unique:
            return
        # The plan's own updates hold positions too: a first and its repeat in one receive.
        holders = {
            journal_id(e.account, e.epoch, e.seq): Holder.of_event(e)
            for u in result.updates
            for e in u.events
        }
        holders.update(await self.store.journaled(unique))
        found = [
            (e, holders[key])
            for e in unique
            if (key := journal_id(e.account, e.epoch, e.seq)) in holders
            and holders[key].event_id != e.id
        ]
        again: list[tuple[Event, Holder]] = []
        reused: list[tuple[Event, Holder]] = []
        for event, holder in found:
            (again if holder.is_issued_again(event) else reused).append((event, holder))
        if again:
            await self.store.journal_issued_again(again, source)
            for event, holder in again:
                VOIDED.labels(event.type).inc()
                log.info(
                    "voided an event issued again at its own position",
                    extra={"account": event.account, "event_id": event.id, "type": event.type,
                           "position": f"{event.epoch}:{event.seq}", "of": holder.event_id},
                )  # fmt: skip
        if reused:
            await self._hold_reused(reused, result, source)

    async def _hold_reused(
        self, reused: Sequence[tuple[Event, Holder | None]], result: Plan, source: dict[str, str]
    ) -> None:
        """Record reused positions (and stranded events: no holder) and hold their events,
        unless settle adopted them."""
        adopted = await self.store.record_reuses(reused, source)
        by_account: dict[str, list[tuple[Event, Holder | None]]] = {}
        for event, holder in reused:
            if event.id not in adopted:
                by_account.setdefault(event.account, []).append((event, holder))
        for account, found in by_account.items():
            (event, holder), more = found[0], len(found) - 1
            if holder is None:
                STRANDED.inc(len(found))
                what = (
                    f"stranded event for {account!r}: epoch {event.epoch} seq {event.seq} "
                    "arrived after the account's next epoch began, and MongoDB never counted it"
                )
            else:
                REUSED_POSITIONS.inc(len(found))
                what = (
                    f"reused position for {account!r}: epoch {event.epoch} seq {event.seq} is "
                    f"event {holder.event_id} in the journal, not {event.id}"
                )
            why = (
                what
                + (f" (and {more} more)" if more else "")
                + f"; run `maas ledger settle --account {account}` once idle"
            )
            log.warning("held for settle", extra={"account": account, "events": len(found),
                                                  "reason": why})  # fmt: skip
            result.hold(account, [e for e, _ in found], why)
