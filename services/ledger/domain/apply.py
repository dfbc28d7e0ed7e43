"""The ordering rule that makes the ledger exactly-once. Pure: no I/O.

An account's event (e, n) follows the applied position (epoch, seq) when
``e == epoch and n == seq + 1`` (the next one) or ``e > epoch and n == 1`` (the first
of a newer epoch, after a re-hydration). Anything at or before the position is a
duplicate and is skipped; anything further ahead is a gap, which is never skipped:
the message stays in SQS until the missing events arrive or it reaches the DLQ.
The events of one account that follow each other fold into one update.

A close (a region's Redis was lost; docs/multi-region.md) is the first event of the
book's newer epoch, and takes as spent whatever the book holds where it applies, after
every event the lost Redis had shipped: its amount is given here, from the book's balance
at the update's start (the update is conditional on that balance too).

When the account moves to a newer epoch, the last seq applied in the epoch it leaves
is kept (`ended`). An older epoch's event past that seq was never counted: it arrived
after the newer epoch began (redriven from the DLQ, say). It is *stranded*, not a
duplicate: held and recorded for settle to adopt, never dropped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from shared.accounting.events import CLOSE, Event


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Position:
    epoch: int
    seq: int
    # (epoch, last seq applied in it) for each epoch the account left, oldest first;
    # epochs left before these were kept (and none before the first) are not known.
    ended: tuple[tuple[int, int], ...] = ()

    def is_duplicate(self, event: Event) -> bool:
        return self.counts(event.epoch, event.seq)

    def counts(self, epoch: int, seq: int) -> bool:
        """Whether MongoDB counted the account's event at (epoch, seq)."""
        return self.includes(epoch, seq) and not self._left_behind(epoch, seq)

    def strands(self, event: Event) -> bool:
        """Whether `event` is of an epoch this account left before the event was counted."""
        return self._left_behind(event.epoch, event.seq)

    def _left_behind(self, epoch: int, seq: int) -> bool:
        if epoch >= self.epoch or not self.ended or epoch < self.ended[0][0]:
            return False
        return seq > dict(self.ended).get(epoch, 0)

    def moved_to(self, event: Event) -> Position:
        ended = self.ended
        if event.epoch != self.epoch:
            ended = (*ended, (self.epoch, self.seq))
        return Position(event.epoch, event.seq, ended)

    def includes(self, epoch: int, seq: int) -> bool:
        """Whether (epoch, seq) is at or before this position."""
        return epoch < self.epoch or (epoch == self.epoch and seq <= self.seq)

    def is_followed_by(self, event: Event) -> bool:
        if event.epoch == self.epoch:
            return event.seq == self.seq + 1
        return event.epoch > self.epoch and event.seq == 1


@dataclass(frozen=True, slots=True)
class Voided:
    """An event that keeps its place in the sequence but counts nothing, and why."""

    of: str  # the event it repeats, or the charge it would give back
    reason: str


@dataclass(slots=True)
class AccountUpdate:
    """One conditional update: move `account` from `start` to `end` in one step."""

    account: str
    start: Position
    end: Position
    events: list[Event] = field(default_factory=list)
    balance: int = 0
    calls: int = 0
    tokens_spent: int = 0
    calls_by_kind: Counter[str] = field(default_factory=Counter)
    voided: dict[str, Voided] = field(default_factory=dict)  # by event id
    start_balance: int | None = None  # the balance it starts from, when a close needs it

    def add(self, event: Event) -> None:
        self.events.append(event)
        self.end = self.end.moved_to(event)
        self._count(event, 1)

    @property
    def epochs_left(self) -> tuple[tuple[int, int], ...]:
        """The epochs this update leaves, with the last seq applied in each."""
        return self.end.ended[len(self.start.ended) :]

    def void(self, event: Event, voided: Voided) -> None:
        """Keep a repeated credit's or refund's place in the sequence, counting nothing."""
        self._count(event, -1)
        self.voided[event.id] = voided

    def _count(self, event: Event, times: int) -> None:
        self.balance += times * event.signed_amount
        if sign := times * event.usage_sign:
            self.calls += sign
            self.tokens_spent += sign * event.amount
            if event.kind:
                self.calls_by_kind[event.kind] += sign


@dataclass(slots=True)
class Plan:
    updates: list[AccountUpdate] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)  # at or before the position
    stranded: list[Event] = field(default_factory=list)  # of a left epoch, never counted
    problems: dict[str, str] = field(default_factory=dict)  # account -> why it is held
    held: set[str] = field(default_factory=set)  # ids of the events that must wait

    @property
    def applied(self) -> list[Event]:
        return [e for u in self.updates for e in u.events]

    def hold(self, account: str, events: list[Event], reason: str) -> None:
        self.problems[account] = reason
        self.held.update(e.id for e in events)

    def merge_holds(self, other: Plan) -> None:
        self.problems.update(other.problems)
        self.held |= other.held


def plan(
    events: list[Event], positions: dict[str, Position], balances: Mapping[str, int] = {}
) -> Plan:
    """Decide, per account, which events apply now, which are duplicates, which wait.

    `events` may span several messages of several shards, in the order received; an
    account's events all come from its own shard, so they are in seq order. `balances`:
    the balances at `positions` of the accounts a close applies to (one without waits).
    """
    by_account: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_account[event.account].append(event)
    result = Plan()
    for account, account_events in by_account.items():
        position = positions.get(account)
        if position is None:
            result.hold(account, account_events, f"unknown account {account!r}")
            continue
        update = AccountUpdate(account, position, position)
        for index, event in enumerate(account_events):
            if update.end.strands(event):
                result.stranded.append(event)
            elif update.end.is_duplicate(event):
                result.duplicates.append(event)
            elif update.end.is_followed_by(event):
                if event.type == CLOSE:
                    if account not in balances:
                        why = f"a close of {account!r} waits for its balance"
                        result.hold(account, account_events[index:], why)
                        break
                    update.start_balance = balances[account]
                    held = max(0, balances[account] + update.balance)
                    update.add(replace(event, amount=held))
                else:
                    update.add(event)
            else:
                reason = (
                    f"gap for {account!r}: applied up to epoch {update.end.epoch} seq "
                    f"{update.end.seq}, next event is epoch {event.epoch} seq {event.seq}"
                )
                result.hold(account, account_events[index:], reason)
                break
        if update.events:
            result.updates.append(update)
    return result
